"""`python -m fast_ast.teacher ckpt=<teacher> [split=train output=...]`: write a teacher's logits for kd=logits.

The teacher (fast_ast.kd.teachers.load_teacher: a checkpoint of this project or a Hugging Face AST
directory) runs frozen, in eval mode, on the clean clips (AudioDataModule.plain_split) of the chosen split(s) of `data`; the logits
[N, C] go to a file keyed by each clip's id (fast_ast.kd.store), with the teacher's identity, its class
list and the corpus in the metadata.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from fast_ast.config_keys import check_known_keys
from fast_ast.device import resolve_device
from fast_ast.data.datamodule import SPLITS
from fast_ast.kd.store import TeacherLogits, check_class_names, save_logits
from fast_ast.kd.teachers import load_teacher
from fast_ast.precision import autocast, check_precision
from fast_ast.resolvers import CONF_DIR, register_resolvers

log = logging.getLogger(__name__)
register_resolvers()


def chosen_splits(split: str) -> list[str]:
    if split == "all":
        return list(SPLITS)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or 'all', got {split!r}")
    return [split]


def write_teacher_logits(cfg: DictConfig) -> Path:
    """Runs the teacher over cfg.split of cfg.data and writes cfg.output; returns its path."""
    splits = chosen_splits(cfg.split)
    device = resolve_device(cfg.device)
    check_precision(cfg.precision, device)
    datamodule = instantiate(cfg.data)
    teacher = load_teacher(cfg.ckpt, cfg.format)
    check_class_names(teacher.class_names, list(datamodule.class_names), f"ckpt={cfg.ckpt}")
    if teacher.sample_rate != datamodule.sample_rate:
        raise ValueError(f"ckpt={cfg.ckpt}: the teacher takes {teacher.sample_rate} Hz audio, the corpus is {datamodule.sample_rate} Hz")
    teacher.to(device)
    datamodule.setup("predict")
    ids: list[str] = []
    rows: list[torch.Tensor] = []
    for split in splits:
        clips = datamodule.plain_split(split)  # no training-time randomness: the clips as evaluated
        for batch in DataLoader(clips, batch_size=cfg.batch_size, shuffle=False, num_workers=datamodule.num_workers):
            with autocast(cfg.precision, device):
                rows.append(teacher(batch["audio"].to(device)).float().cpu())
            ids.extend(batch["id"])
        log.info("teacher logits for %d clips of split %s", len(clips), split)
    metadata = {
        **teacher.identity,
        "splits": json.dumps(splits),
        "corpus": json.dumps(OmegaConf.to_container(cfg.data, resolve=True), sort_keys=True),
        "written_by": "python -m fast_ast.teacher",
        "precision": cfg.precision,
    }
    store = TeacherLogits(torch.cat(rows), ids, list(teacher.class_names), metadata)
    path = save_logits(cfg.output, store)
    log.info("wrote %d x %d teacher logits to %s", *store.logits.shape, path)
    return path


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="teacher")
def main(cfg: DictConfig) -> None:
    check_known_keys(cfg, "teacher")
    print(write_teacher_logits(cfg))


if __name__ == "__main__":
    main()
