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


def build_model(cfg: DictConfig, datamodule: AudioDataModule):
    """`cfg.model` instantiated with the corpus's arguments and the `tome` group."""
    tome = OmegaConf.to_container(cfg.tome, resolve=True)
    return instantiate(cfg.model, **corpus_arguments(datamodule), tome=tome, _convert_="all")
