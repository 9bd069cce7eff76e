"""The training run directory's guards: one writer at a time, a resume that survives damaged checkpoints,
and a failure record that survives an unwritable directory.

    RunDirLock        <run dir>/train.lock, an exclusive flock held for the whole job; a second process
                      on the same directory is refused with the holder's pid. The kernel drops the lock
                      when the holder dies (kill -9 included), so a requeued job is never blocked.
    remove_stale_temps  temp files of checkpoint writes a killed job left (fast_ast.callbacks.checkpoint_io)
    choose_resume     resume=auto: last.ckpt if it loads, else the newest checkpoint that does (last.prev.ckpt,
                      best-*.ckpt), each unreadable one named in a warning; none: a fresh start, with a warning
    write_failure     results.json "failed" + traceback.txt in the run dir; when that cannot be written,
                      <run dir>.failed.json next to it (the sweep directory for a sweep job, read by
                      fast_ast.report as "failed: could not write"), and always a line on stderr
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import traceback
from pathlib import Path

import torch

from fast_ast.callbacks.checkpoint_io import TEMP_SUFFIX
from fast_ast.results import write_results

log = logging.getLogger(__name__)

LOCK_NAME = "train.lock"
FAILED_SUFFIX = ".failed.json"


class RunDirInUseError(RuntimeError):
    """Another live process holds the run directory's lock."""


class RunDirLock:
    """Exclusive, non-blocking flock on <run_dir>/train.lock; the file holds the holder's pid."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.handle: int | None = None

    def acquire(self) -> RunDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(handle)
            raise RunDirInUseError(
                f"{self.path.parent} is in use by another training process (pid {holder}, lock {self.path}). "
                "Wait for it to finish, stop it, or give this job its own hydra.run.dir."
            ) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        self.handle = handle
        return self

    def release(self) -> None:
        if self.handle is not None:
            os.close(self.handle)  # closing drops the flock
            self.handle = None

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def remove_stale_temps(checkpoint_dir: str | Path) -> list[Path]:
    """Deletes `.<name>.<pid>.tmp` files of interrupted checkpoint writes (call while holding the lock)."""
    directory = Path(checkpoint_dir)
    stale = sorted(directory.glob(f".*{TEMP_SUFFIX}")) if directory.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
        log.info("removed %s, left by an interrupted checkpoint write", path)
    return stale


def unreadable_reason(path: Path) -> str | None:
    """Why `path` cannot be resumed from (unreadable, truncated, not a full training checkpoint), else None."""
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, EOFError with no message, pickle refused...
        return f"cannot be loaded ({type(error).__name__}: {error or 'unexpected end of file'})"
    if not isinstance(checkpoint, dict) or "optimizer_states" not in checkpoint or "loops" not in checkpoint:
        return "not a full training checkpoint (weights only)"
    return None


def resume_candidates(checkpoint_dir: Path) -> list[Path]:
    """last.ckpt, last.prev.ckpt, then every other .ckpt newest first."""
    preferred = [checkpoint_dir / "last.ckpt", checkpoint_dir / "last.prev.ckpt"]
    others = sorted(
        (p for p in checkpoint_dir.glob("*.ckpt") if p not in preferred and p.is_file()),
        key=lambda p: p.stat().st_mtime_ns,
        reverse=True,
    )
    return [p for p in preferred if p.is_file()] + others


def choose_resume(checkpoint_dir: str | Path) -> str | None:
    """resume=auto: the first readable candidate (see resume_candidates), None when there is none."""
    candidates = resume_candidates(Path(checkpoint_dir))
    skipped = []
    for path in candidates:
        reason = unreadable_reason(path)
        if reason is None:
            if skipped:
                log.warning("resume=auto: falling back to %s", path)
            log.info("resume=auto: continuing from %s", path)
            return str(path)
        skipped.append(path)
        log.warning("resume=auto: cannot resume from %s: %s", path, reason)
    if skipped:
        log.warning("resume=auto: no readable checkpoint in %s; starting fresh", checkpoint_dir)
    return None


def write_failure(run_dir: str | Path, failure: dict, error: BaseException) -> Path | None:
    """Records a failed job (see the module docstring); returns where the record went, None if nowhere."""
    run_dir = Path(run_dir)
    text = "".join(traceback.format_exception(error))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "traceback.txt").write_text(text)
        return write_results(run_dir, {**failure, "traceback": str(run_dir / "traceback.txt")})
    except OSError as write_error:
        fallback = run_dir.parent / f"{run_dir.name}{FAILED_SUFFIX}"
        record = {**failure, "status": "failed", "error_written": f"could not write to {run_dir}: {write_error}", "traceback_text": text}
        try:
            fallback.write_text(json.dumps(record, indent=2, default=str) + "\n")
        except OSError:
            fallback = None
        where = f"recorded in {fallback}" if fallback else "not recorded anywhere else"
        print(
            f"fast_ast: job failed: {failure.get('error')}; and its failure could not be written to {run_dir} "
            f"({type(write_error).__name__}: {write_error}); {where}",
            file=sys.stderr,
        )
        return fallback


def guard_run_dir(run_dir: Path) -> RunDirLock:
    """Takes the run directory's lock (refusing a second writer) and clears stale checkpoint temp files."""
    lock = RunDirLock(run_dir).acquire()
    remove_stale_temps(run_dir / "checkpoints")
    return lock
