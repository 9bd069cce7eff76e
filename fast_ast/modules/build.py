"""Builds the LightningModule of a run from the composed config and the datamodule it trains on."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fast_ast.data.datamodule import AudioDataModule


def corpus_arguments(datamodule: AudioDataModule) -> dict:
    """What the model needs to know about the corpus (class list, clip format, features, augmentation)."""
    return {
        "num_classes": datamodule.num_classes,
        "class_names": list(datamodule.class_names),
        "multilabel": datamodule.multilabel,
        "sample_rate": datamodule.sample_rate,
        "clip_samples": datamodule.clip_samples,
        "features": dict(datamodule.features),
        "augment": dict(datamodule.augment),
    }


KD_STUDENT = "fast_ast.modules.kd_student.KDStudent"
EVENT_CLASSIFIER = "fast_ast.modules.event_classifier.EventClassifier"


def build_model(cfg: DictConfig, datamodule: AudioDataModule):
    """`cfg.model` instantiated with the corpus's arguments and the `tome` group.

    With kd.name != none the same classifier arguments build a KDStudent, which also takes the kd group.
    """
    if getattr(datamodule, "has_frame_targets", False) and cfg.model._target_ != EVENT_CLASSIFIER:
        raise ValueError(f"{type(datamodule).__name__} has frame-level targets: use model=ast_events (+experiment=events_ast)")
    tome = OmegaConf.to_container(cfg.tome, resolve=True)
    kd = OmegaConf.to_container(cfg.kd, resolve=True, throw_on_missing=True) if "kd" in cfg else {"name": "none"}
    if kd["name"] == "none":
        return instantiate(cfg.model, **corpus_arguments(datamodule), tome=tome, _convert_="all")
    if cfg.model._target_ != "fast_ast.modules.classifier.AudioClassifier":
        raise ValueError(f"kd={kd['name']} distils into an AudioClassifier; model._target_ is {cfg.model._target_}")
    return instantiate(cfg.model, **corpus_arguments(datamodule), tome=tome, kd=kd, _target_=KD_STUDENT, _convert_="all")
