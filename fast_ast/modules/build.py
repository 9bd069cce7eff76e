"""Builds the LightningModule of a run from the composed config and the datamodule it trains on."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fast_ast.data.datamodule import AudioDataModule
from fast_ast.kd.distillation import Distillation


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


EVENT_CLASSIFIER = "fast_ast.modules.event_classifier.EventClassifier"


def build_distillation(kd: dict, datamodule: AudioDataModule, bce: bool) -> Distillation | None:
    """The kd group as a loss object (None for kd=none). With stored teacher views the datamodule's
    training loader replays them: epoch e serves view e mod E with the stored seeds."""
    if kd["name"] == "none":
        return None
    distillation = Distillation(kd, list(datamodule.class_names), bce, datamodule.sample_rate, dict(datamodule.augment))
    datamodule.replay_views = distillation.replay_seeds
    return distillation


def build_model(cfg: DictConfig, datamodule: AudioDataModule):
    """`cfg.model` instantiated with the corpus's arguments, the `tome` group and, with kd.name != none,
    the Distillation loss built from the `kd` group (any classifier, the event model included)."""
    if getattr(datamodule, "has_frame_targets", False) and cfg.model._target_ != EVENT_CLASSIFIER:
        raise ValueError(f"{type(datamodule).__name__} has frame-level targets: use model=ast_events (+experiment=events_ast)")
    tome = OmegaConf.to_container(cfg.tome, resolve=True)
    kd = OmegaConf.to_container(cfg.kd, resolve=True, throw_on_missing=True) if "kd" in cfg else {"name": "none"}
    bce = datamodule.multilabel or cfg.model.get("loss", "auto") == "bce"  # the classifier's loss_name rule
    distillation = build_distillation(kd, datamodule, bce)
    model = instantiate(cfg.model, **corpus_arguments(datamodule), tome=tome, _convert_="all", _partial_=True)
    return model(distillation=distillation)
