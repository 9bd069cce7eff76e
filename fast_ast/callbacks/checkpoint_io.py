"""AtomicCheckpointIO: every checkpoint is written next to its target, fsynced, then renamed over it.

Lightning's own writer (fsspec transaction) writes into $TMPDIR and moves the file: across disks the move
is a copy, so a full disk or a kill leaves a truncated or 0-byte last.ckpt, and a kill on the same disk
leaves a checkpoint-sized temp file in $TMPDIR. Here the temp file `.<name>.<pid>.tmp` lies in the target's
directory (a rename within one filesystem is atomic), is fsynced before the rename (and the directory
after it), and is removed when the write fails. A kill leaves at most that temp file, which
fast_ast.run_dir removes at the next start. The target is always the old file or the new one, whole.

The last.ckpt being replaced is first kept as last.prev.ckpt, so a resume has a fallback even when a
last.ckpt was damaged some other way (fast_ast.run_dir.resume_candidates).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

KEEP_PREVIOUS = {"last.ckpt": "last.prev.ckpt"}
TEMP_SUFFIX = ".tmp"


def temp_path(target: Path) -> Path:
    """`.<name>.<pid>.tmp` next to `target` (the pid keeps concurrent writers' files apart)."""
    return target.with_name(f".{target.name}.{os.getpid()}{TEMP_SUFFIX}")


def fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def atomic_torch_save(obj: Any, target: str | Path) -> Path:
    """torch.save(obj) to `target` through a fsynced temp file in its directory and a rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temp_path(target)
    try:
        with open(temporary, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        previous = KEEP_PREVIOUS.get(target.name)
        if previous and target.is_file():
            os.replace(target, target.with_name(previous))
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)
    return target


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose writes are atomic in the run directory (see the module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_torch_save(checkpoint, path)
