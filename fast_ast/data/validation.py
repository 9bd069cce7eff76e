"""Checking a corpus's files once, before training, and acting on the bad ones (`data.on_bad_file`).

Every file a corpus references is decoded once at setup: a file that is missing, empty, not audio,
truncated, of zero length, undecodable or holding NaN/infinite samples gets a `reason`. Results are kept
in a SQLite file keyed by (path, size, mtime), so a second run over an unchanged corpus decodes nothing.
Then `on_bad_file=error` fails with the list of bad files and why, `skip` excludes them and writes the
list (bad_files.json) into the run directory. Labels a corpus does not know are an error naming them.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import struct
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset

from fast_ast.data.audio_io import AudioReadError, read_audio, unreadable_reason
from fast_ast.data.resample import resample

if TYPE_CHECKING:
    from fast_ast.data.audio_cache import AudioStore

log = logging.getLogger(__name__)

ON_BAD_FILE = ("error", "skip")
BAD_FILES_NAME = "bad_files.json"
LISTED_IN_ERROR = 20  # bad files named in the error message; the report file holds them all


@dataclass(frozen=True)
class FileInfo:
    """What the check learnt about one file. reason None = usable; seconds = decoded duration."""

    path: str
    reason: str | None
    size: int = 0
    mtime_ns: int = 0
    rate: int = 0
    channels: int = 0
    format: str = ""
    subtype: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reason is None


class BadFilesError(ValueError):
    """Raised (data.on_bad_file=error) when a corpus references files that cannot be used."""


class UnknownLabelsError(ValueError):
    """Raised when a corpus's metadata names labels outside its label map."""


def wav_truncation(path: str) -> str | None:
    """For a RIFF/WAVE file: a reason when its data chunk declares more bytes than the file holds."""
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        header = file.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        while True:
            chunk = file.read(8)
            if len(chunk) < 8:
                return None
            name, declared = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"data":
                available = size - file.tell()
                if declared not in (0, 0xFFFFFFFF) and declared > available:  # 0 / ~0: length left open by a streaming writer
                    return f"truncated (header declares {declared} bytes of audio, file holds {available})"
                return None
            file.seek(declared + (declared & 1), os.SEEK_CUR)


def describe_file(path: str) -> FileInfo:
    """What the header says, without decoding: a reason for a missing, unreadable, empty, non-audio,
    truncated or zero-length file. The one check both training (inspect_file) and prediction use."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return FileInfo(path, f"missing file (broken symbolic link to {os.readlink(path)})")
        return FileInfo(path, "missing file")
    except OSError as error:
        return FileInfo(path, f"cannot stat ({error.strerror or error})")
    stamp = dict(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    if stat.st_size == 0:
        return FileInfo(path, "empty file (0 bytes)", **stamp)
    unreadable = unreadable_reason(path)
    if unreadable:  # permission denied, I/O error: libsndfile would only say "System error"
        return FileInfo(path, unreadable, **stamp)
    try:
        info = sf.info(path)
    except Exception as error:
        return FileInfo(path, f"not audio ({type(error).__name__}: {error})", **stamp)
    described = FileInfo(path, None, rate=info.samplerate, channels=info.channels, format=info.format, subtype=info.subtype, **stamp)
    truncated = wav_truncation(path)
    if truncated:
        return _with(described, reason=truncated)
    if info.frames == 0:
        return _with(described, reason="zero length")
    return described


CHECK_BLOCK_SECONDS = 60  # the check decodes files not kept in cache_dir this much at a time


def inspect_file(path: str, store: AudioStore | None = None) -> FileInfo:
    """describe_file, then a decode of the whole file (NaN/infinite samples, decoding errors, duration).

    With a caching `store`, the decoded copy at the corpus rate is written to cache_dir. Otherwise the file
    is decoded CHECK_BLOCK_SECONDS at a time (bounded memory for any length) and, with a store, its first
    block is also resampled to the corpus rate, so resampling is exercised at setup too.
    """
    described = describe_file(path)
    if not described.ok:
        return described
    if store is not None and store.caches(described):
        try:
            waveform = read_audio(path, store.sample_rate)
        except AudioReadError as error:
            return _with(described, reason=error.reason)
        store.save(described, waveform)
        return _with(described, seconds=waveform.shape[0] / store.sample_rate)
    frames = 0
    try:
        for block in sf.blocks(path, blocksize=described.rate * CHECK_BLOCK_SECONDS, dtype="float32", always_2d=True):
            if not np.isfinite(block).all():
                return _with(described, reason="contains NaN or infinite samples")
            if frames == 0 and store is not None and described.rate != store.sample_rate:
                resample(torch.from_numpy(block.mean(axis=1)), described.rate, store.sample_rate)
            frames += block.shape[0]
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        return _with(described, reason=f"cannot decode ({type(error).__name__}: {error})")
    if frames == 0:
        return _with(described, reason="zero length")
    return _with(described, seconds=frames / described.rate)


def _with(info: FileInfo, **changes) -> FileInfo:
    return FileInfo(**{**asdict(info), **changes})


class CheckCache:
    """SQLite table of FileInfo rows; a row is valid while the file's size and mtime are unchanged."""

    COLUMNS = [f.name for f in fields(FileInfo)]

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS checks (path TEXT PRIMARY KEY, reason TEXT, size INTEGER, mtime_ns INTEGER, "
                "rate INTEGER, channels INTEGER, format TEXT, subtype TEXT, seconds REAL)"
            )

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=120)

    def lookup(self, stamps: dict[str, tuple[int, int]]) -> dict[str, FileInfo]:
        """stamps: path -> (size, mtime_ns). Returns the cached FileInfo of every unchanged path."""
        found: dict[str, FileInfo] = {}
        paths = list(stamps)
        with self.connect() as db:
            for begin in range(0, len(paths), 500):
                chunk = paths[begin : begin + 500]
                rows = db.execute(
                    f"SELECT {', '.join(self.COLUMNS)} FROM checks WHERE path IN ({', '.join('?' * len(chunk))})", chunk
                )
                for row in rows:
                    info = FileInfo(*row)
                    if (info.size, info.mtime_ns) == stamps[info.path]:
                        found[info.path] = info
        return found

    def store(self, infos: Iterable[FileInfo]) -> None:
        rows = [tuple(getattr(info, name) for name in self.COLUMNS) for info in infos]
        with self.connect() as db:
            db.executemany(f"INSERT OR REPLACE INTO checks VALUES ({', '.join('?' * len(self.COLUMNS))})", rows)


class _Inspection(Dataset):
    """Runs inspect_file in DataLoader workers (batch_size=None: one FileInfo per item)."""

    def __init__(self, paths: Sequence[str], store: AudioStore | None):
        self.paths, self.store = list(paths), store

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> FileInfo:
        return inspect_file(self.paths[index], self.store)


def _identity(info: FileInfo) -> FileInfo:
    return info


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def check_files(
    paths: Iterable[str], cache: CheckCache, store: AudioStore | None = None, num_workers: int = 0
) -> dict[str, FileInfo]:
    """FileInfo of every path: from the cache when the file is unchanged, else decoded (in workers) and cached.

    A missing file is reported without being cached. A cached good file whose decoded copy is missing
    from the store's cache_dir is decoded again on first use (AudioStore.load).
    """
    unique = list(dict.fromkeys(paths))
    stamps = {path: _stamp(path) for path in unique}
    infos = {path: describe_file(path) for path, stamp in stamps.items() if stamp is None}
    infos.update(cache.lookup({path: stamp for path, stamp in stamps.items() if stamp is not None}))
    todo = [path for path in unique if path not in infos]
    if todo:
        log.info("checking %d audio files (%d known from %s)", len(todo), len(unique) - len(todo), cache.path)
        loader = DataLoader(
            _Inspection(todo, store), batch_size=None, num_workers=min(num_workers, len(todo)), collate_fn=_identity
        )
        checked = list(loader)
        # not cached: missing files (no stamp) and permission / I/O errors (fixing those leaves size and mtime as they were)
        cache.store(info for info in checked if info.mtime_ns != 0 and not (info.reason or "").startswith("cannot read"))
        infos.update((info.path, info) for info in checked)
    return {path: infos[path] for path in unique}


def write_bad_files(bad: Sequence[FileInfo], report_dir: str | Path, policy: str) -> Path:
    path = Path(report_dir) / BAD_FILES_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    files = [{"path": info.path, "reason": info.reason} for info in bad]
    path.write_text(json.dumps({"policy": policy, "count": len(files), "files": files}, indent=2) + "\n")
    return path


def apply_bad_file_policy(infos: dict[str, FileInfo], policy: str, report_dir: str | Path | None) -> set[str]:
    """Returns the bad paths to exclude (policy 'skip'), or raises BadFilesError listing them ('error')."""
    if policy not in ON_BAD_FILE:
        raise ValueError(f"data.on_bad_file must be one of {ON_BAD_FILE}, got {policy!r}")
    bad = sorted((info for info in infos.values() if not info.ok), key=lambda info: info.path)
    if not bad:
        return set()
    if policy == "skip" and report_dir is None:
        raise ValueError("data.on_bad_file=skip writes the skipped files to data.report_dir, which is not set")
    report = write_bad_files(bad, report_dir, policy) if report_dir is not None else None
    if policy == "error":
        listed = "\n".join(f"  {info.path}: {info.reason}" for info in bad[:LISTED_IN_ERROR])
        more = f"\n  ... and {len(bad) - LISTED_IN_ERROR} more" if len(bad) > LISTED_IN_ERROR else ""
        where = f" (full list: {report})" if report else ""
        raise BadFilesError(
            f"{len(bad)} of {len(infos)} files cannot be used{where}:\n{listed}{more}\n"
            "Fix or remove them, or set data.on_bad_file=skip to train without them."
        )
    log.warning("skipping %d of %d files that cannot be used; list in %s", len(bad), len(infos), report)
    return {info.path for info in bad}


def check_unique_ids(clips: Iterable, where: str) -> None:
    """Raises ValueError naming the clip ids (clip.id) that more than one clip of `where` shares: ids key
    teacher logits and predictions, so two clips must never share one."""
    paths: dict[str, list[str]] = {}
    for clip in clips:
        paths.setdefault(clip.id, []).append(clip.path)
    repeated = {clip_id: shared for clip_id, shared in paths.items() if len(shared) > 1}
    if repeated:
        shown = "\n".join(f"  {clip_id!r}: {', '.join(shared)}" for clip_id, shared in list(repeated.items())[:LISTED_IN_ERROR])
        raise ValueError(f"{where}: {len(repeated)} clip id(s) shared by several files:\n{shown}")


def check_known_labels(found: Iterable[str], known: Collection[str], where: str) -> None:
    """Raises UnknownLabelsError naming every label in `found` missing from `known`."""
    unknown = sorted(set(found) - set(known))
    if unknown:
        shown = ", ".join(repr(label) for label in unknown[:LISTED_IN_ERROR])
        more = f" and {len(unknown) - LISTED_IN_ERROR} more" if len(unknown) > LISTED_IN_ERROR else ""
        raise UnknownLabelsError(f"{where}: {len(unknown)} unknown label(s): {shown}{more}")


LOAD_FAILURES_NAME = "bad_files_at_load.jsonl"


class LoadFailures:
    """data.on_bad_file for files that fail when read during training, after passing the setup check (a file
    made unreadable, replaced or corrupted since): 'error' stops with the file's name and reason; 'skip'
    serves the next readable item of the split instead, logs the file and appends it to
    <report_dir>/bad_files_at_load.jsonl (one JSON object a line). Never a bare exception mid-epoch."""

    def __init__(self, policy: str = "error", report_dir: str | Path | None = None):
        if policy not in ON_BAD_FILE:
            raise ValueError(f"data.on_bad_file must be one of {ON_BAD_FILE}, got {policy!r}")
        self.policy, self.report_dir = policy, report_dir
        self.failed: set[str] = set()  # per worker process

    def item(self, index: int, size: int, read: Callable[[int], dict]) -> dict:
        """read(index), or with 'skip' read of the next index (cyclically) whose file can be read."""
        for step in range(size):
            try:
                return read((index + step) % size)
            except AudioReadError as error:
                self.handle(error)
        raise BadFilesError(f"every item of this split failed to load (data.on_bad_file=skip); the files: {sorted(self.failed)}")

    def handle(self, error: AudioReadError) -> None:
        if self.policy == "error":
            raise BadFilesError(
                f"{error.path}: {error.reason} (it passed the setup check, so it changed since). "
                "Fix or remove it, or set data.on_bad_file=skip to leave out files that fail while training."
            ) from error
        if error.path in self.failed:
            return
        self.failed.add(error.path)
        listed = ""
        if self.report_dir is not None:
            path = Path(self.report_dir) / LOAD_FAILURES_NAME
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as file:  # one short line per write: appends of parallel workers do not interleave
                file.write(json.dumps({"path": error.path, "reason": error.reason, "pid": os.getpid()}) + "\n")
            listed = f"; listed in {path}"
        log.warning("skipping %s, which failed to load: %s%s", error.path, error.reason, listed)
