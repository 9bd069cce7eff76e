"""`python -m fast_ast.teacher ckpt_path=<teacher> [views=E topk=K split=train output=...]`: teacher logits for kd=logits.

The teacher (fast_ast.kd.teachers.load_teacher: a checkpoint of this project or a Hugging Face AST
directory; a list of them is an ensemble whose logits are averaged) runs frozen, in eval mode.
    views=0   the clean clips (AudioDataModule.plain_split) of the chosen split(s): logits [N, C] keyed by
              clip id (fast_ast.kd.store), one un-augmented view per clip
    views=E   E epochs of *augmented training views* of the train split (CED-style consistent views): for
              clip n and view e, the view seed (fast_ast.data.views: the crop, event window, mixup partner
              and weight, SpecAugment masks, noise and time shift all follow from it) and the teacher's logits
              of that exact view (fast_ast.kd.view_store); all of them, or the top K (float16 + indices).
              A student with kd.path=<file> replays view e mod E at epoch e.
The teacher's identity, its class list and the corpus (and, for views, the augment settings) go into the metadata.
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
from fast_ast.data.views import OrderedViews
from fast_ast.frontend.augment import Augment
from fast_ast.kd.distillation import as_list
from fast_ast.kd.store import TeacherLogits, check_class_names, save_logits
from fast_ast.kd.teachers import Teacher, load_teacher
from fast_ast.kd.view_store import TeacherViews, id_hash, save_views, topk_logits
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


def load_teachers(cfg: DictConfig, datamodule) -> list[Teacher]:
    """The teachers of cfg.ckpt_path (one path or a list), checked against the corpus."""
    paths = as_list(cfg.ckpt_path)
    if not paths:
        raise ValueError("ckpt_path needs a teacher: a checkpoint of this project or a Hugging Face AST directory (or a list of them)")
    teachers = []
    for path in paths:
        teacher = load_teacher(path, cfg.format)
        check_class_names(teacher.class_names, list(datamodule.class_names), f"ckpt_path={path}")
        if teacher.sample_rate != datamodule.sample_rate:
            raise ValueError(f"ckpt_path={path}: the teacher takes {teacher.sample_rate} Hz audio, the corpus is {datamodule.sample_rate} Hz")
        teachers.append(teacher)
    return teachers


def identity(teachers: list[Teacher]) -> dict[str, str]:
    """The metadata naming the teacher (or the ensemble: its members' entries as JSON lists)."""
    if len(teachers) == 1:
        return dict(teachers[0].identity)
    keys = sorted({key for t in teachers for key in t.identity})
    merged = {key: json.dumps([t.identity.get(key) for t in teachers]) for key in keys}
    merged["teacher"] = f"ensemble of {len(teachers)}: " + "; ".join(t.identity["teacher"] for t in teachers)
    return merged


def to_device(batch: dict, device: torch.device) -> dict:
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


def clean_logits(cfg: DictConfig, datamodule, teachers: list[Teacher], device: torch.device) -> tuple[torch.Tensor, list[str]]:
    ids: list[str] = []
    rows: list[torch.Tensor] = []
    for split in chosen_splits(cfg.split):
        clips = datamodule.plain_split(split)  # no training-time randomness: the clips as evaluated
        for batch in DataLoader(clips, batch_size=cfg.batch_size, shuffle=False, num_workers=datamodule.num_workers):
            audio = batch["audio"].to(device)
            with autocast(cfg.precision, device):
                rows.append(torch.stack([teacher(audio).float() for teacher in teachers]).mean(dim=0).cpu())
            ids.extend(batch["id"])
        log.info("teacher logits for %d clips of split %s", len(clips), split)
    return torch.cat(rows), ids


def view_logits(cfg: DictConfig, datamodule, teachers: list[Teacher], device: torch.device) -> dict[str, torch.Tensor | list]:
    """Scores views 0..E-1 of every training clip: {"view_seeds", "id_hashes" [E, N], "logits" [E, N, C], "ids"}."""
    if cfg.split != "train":
        raise ValueError(f"views={cfg.views} scores augmented training views: split must be train, got {cfg.split!r}")
    views = datamodule.train_views()
    augment = Augment(**datamodule.augment)
    size, count = len(views), int(cfg.views)
    seeds = torch.zeros(count, size, dtype=torch.long)
    hashes = torch.zeros(count, size, dtype=torch.long)
    logits = torch.zeros(count, size, datamodule.num_classes)
    ids: list[str] = [""] * size
    loader = DataLoader(views, batch_size=cfg.batch_size, sampler=OrderedViews(size, count), num_workers=datamodule.num_workers)
    for batch in loader:
        index, view = batch["index"], batch["view"]
        with autocast(cfg.precision, device):
            scored = torch.stack([teacher.view_logits(to_device(batch, device), augment).float() for teacher in teachers]).mean(dim=0)
        logits[view, index] = scored.cpu()
        seeds[view, index] = batch["view_seed"]
        hashes[view, index] = torch.tensor([id_hash(clip_id) for clip_id in batch["id"]], dtype=torch.long)
        for i, v, clip_id in zip(index.tolist(), view.tolist(), batch["id"]):
            if v == 0:
                ids[i] = clip_id
    log.info("teacher logits for %d views of %d training clips", count, size)
    return {"view_seeds": seeds, "id_hashes": hashes, "logits": logits, "ids": ids}


def write_teacher_logits(cfg: DictConfig) -> Path:
    """Runs the teacher(s) over cfg.data as the module docstring says and writes cfg.output; returns its path."""
    if int(cfg.views) < 0 or int(cfg.topk) < 0:
        raise ValueError(f"views and topk must be >= 0, got views={cfg.views}, topk={cfg.topk}")
    device = resolve_device(cfg.device)
    check_precision(cfg.precision, device)
    datamodule = instantiate(cfg.data)
    teachers = [teacher.to(device) for teacher in load_teachers(cfg, datamodule)]
    if int(cfg.topk) > datamodule.num_classes:
        raise ValueError(f"topk={cfg.topk} is more than the corpus's {datamodule.num_classes} classes")
    datamodule.setup("fit")
    metadata = {
        **identity(teachers),
        "corpus": json.dumps(OmegaConf.to_container(cfg.data, resolve=True), sort_keys=True),
        "written_by": "python -m fast_ast.teacher",
        "precision": cfg.precision,
    }
    classes = list(datamodule.class_names)
    if int(cfg.views) == 0:
        if int(cfg.topk):
            raise ValueError("topk applies to stored views (views=E > 0); clean logits files hold every logit")
        logits, ids = clean_logits(cfg, datamodule, teachers, device)
        store = TeacherLogits(logits, ids, classes, {**metadata, "splits": json.dumps(chosen_splits(cfg.split))})
        path = save_logits(cfg.output, store)
        log.info("wrote %d x %d teacher logits to %s", *store.logits.shape, path)
        return path
    scored = view_logits(cfg, datamodule, teachers, device)
    metadata.update(
        splits=json.dumps(["train"]), views=str(cfg.views), topk=str(cfg.topk), ids=json.dumps(scored["ids"]),
        augment=json.dumps(dict(datamodule.augment), sort_keys=True), features=json.dumps(dict(datamodule.features), sort_keys=True),
    )
    if int(cfg.topk):
        values, indices = topk_logits(scored["logits"], int(cfg.topk))
        store = TeacherViews(scored["view_seeds"], scored["id_hashes"], classes, metadata, topk_values=values, topk_indices=indices)
    else:
        store = TeacherViews(scored["view_seeds"], scored["id_hashes"], classes, metadata, logits=scored["logits"])
    path = save_views(cfg.output, store)
    log.info("wrote %d views x %d clips of teacher logits (topk %s) to %s", store.views, store.clips, cfg.topk, path)
    return path


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="teacher")
def main(cfg: DictConfig) -> None:
    check_known_keys(cfg, "teacher")
    print(write_teacher_logits(cfg))


if __name__ == "__main__":
    main()
