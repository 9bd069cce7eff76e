"""`python -m fast_ast.predict ckpt_path=... inputs=FILE_OR_DIR [hop_seconds=...]`: label recordings of any length.

Each file gets the check training uses (fast_ast.data.validation.describe_file), then is read whole
(fast_ast.data.audio_io.read_audio: mono, resampled to the model's rate) and cut
into windows of the model's input length (its training clip length) every `hop_seconds`; windows run
through the model in batches. Writes in the run directory:
    predictions.csv  file, start_s, end_s, label_1, score_1, ... label_k, score_k   (one row per window)
    events.csv       file, label, onset_s, offset_s, score                          (merged event segments)
    unreadable.csv   file, reason   (only when some input could not be read; also printed at the end)
Event segments: for event models (a frame head, model=ast_events) the frame probabilities of overlapping
windows are averaged on the model's frame grid (frame_hop_s apart), thresholded and merged per class; for
clip classifiers each window's scores stand for the hop-wide span around its centre, and runs of
consecutive windows at or above the threshold for a label are merged. A segment's score is its peak.
An event model's background class (data.background_class at training) is not an event: it is left out
of events.csv unless include_background=true (predictions.csv still ranks it).
Unreadable files do not stop the run; it fails (non-zero exit) only when no file could be processed.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fast_ast.config_keys import check_known_keys
from fast_ast.data.audio_io import AudioReadError, read_audio
from fast_ast.data.validation import describe_file
from fast_ast.inference.files import list_inputs
from fast_ast.device import resolve_device
from fast_ast.inference.model import is_event_model, load_for_inference
from fast_ast.inference.segments import Segment, merge_active
from fast_ast.inference.windows import FrameAverager, cut_windows, tiling_spans, window_starts
from fast_ast.modules.classifier import AudioClassifier
from fast_ast.precision import autocast, check_precision
from fast_ast.resolvers import CONF_DIR, register_resolvers

log = logging.getLogger(__name__)
register_resolvers()

PREDICTIONS_FILE = "predictions.csv"
EVENTS_FILE = "events.csv"
UNREADABLE_FILE = "unreadable.csv"


@dataclass
class Settings:
    window: int  # samples per window (the model's clip_samples)
    hop: int  # samples between window starts
    sample_rate: int
    batch_size: int
    top_k: int
    threshold: float
    precision: str  # fast_ast.precision name: the forward's autocast
    excluded: tuple[str, ...] = ()  # labels never written as event segments (the background class)


@dataclass
class FilePrediction:
    duration_s: float
    starts: torch.Tensor  # [N] window start samples
    scores: torch.Tensor  # [N, C] window-level class scores
    segments: list[Segment] = field(default_factory=list)


def read_checked(path: Path, sample_rate: int) -> torch.Tensor:
    """The file check training uses (validation.describe_file: truncated, empty, not audio...), then the
    decode; raises AudioReadError naming the file and the reason."""
    info = describe_file(str(path))
    if not info.ok:
        raise AudioReadError(path, info.reason)
    return read_audio(path, sample_rate)


def check_settings(cfg: DictConfig, model: AudioClassifier) -> Settings:
    rate, window = int(model.hparams.sample_rate), int(model.hparams.clip_samples)
    hop_seconds = cfg.hop_seconds if cfg.hop_seconds is not None else window / rate / 2
    hop = int(round(hop_seconds * rate))
    if not 0 < hop <= window:
        raise ValueError(f"hop_seconds={hop_seconds} must be > 0 and at most the model's window of {window / rate} s")
    if is_event_model(model):
        frame_hop = model.frame_hop_samples
        if hop % frame_hop:
            raise ValueError(
                f"hop_seconds={hop_seconds}: for an event model it must be a multiple of its frame hop {frame_hop / rate} s "
                "(so that the frames of overlapping windows line up)"
            )
    if cfg.batch_size < 1 or cfg.top_k < 1:
        raise ValueError(f"batch_size and top_k must be >= 1, got {cfg.batch_size} and {cfg.top_k}")
    check_precision(cfg.precision, next(model.parameters()).device)
    if not 0 < cfg.threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {cfg.threshold}")
    background = model.background_class if is_event_model(model) else None
    excluded = (background,) if background is not None and not cfg.include_background else ()
    return Settings(
        window, hop, rate, int(cfg.batch_size), min(int(cfg.top_k), model.num_classes), float(cfg.threshold), cfg.precision,
        excluded,
    )


@torch.inference_mode()
def predict_waveform(model: AudioClassifier, waveform: torch.Tensor, settings: Settings) -> FilePrediction:
    """waveform [S] -> window scores [N, C] and event segments (see the module docstring)."""
    device = next(model.parameters()).device
    duration = waveform.shape[-1] / settings.sample_rate
    starts = window_starts(waveform.shape[-1], settings.window, settings.hop)
    event_model = is_event_model(model)
    if event_model:
        frame_hop = model.frame_hop_samples
        frame_hop_s, offset_s = frame_hop / settings.sample_rate, model.frame_offset_s
        # a window's frames whose centres lie inside it (the others see only its zero padding)
        inside = model.frame_times(model.backbone.num_frames) < settings.window / settings.sample_rate
        # grid frames centred before the end of the recording and covered by some window
        covered = int(starts[-1]) // frame_hop + int(inside.sum())
        total_frames = max(1, min(math.ceil((duration - offset_s) / frame_hop_s), covered))
        averager = FrameAverager(total_frames, model.num_classes)
    scores = []
    for batch_starts in starts.split(settings.batch_size):
        windows = cut_windows(waveform, batch_starts, settings.window).to(device)
        with autocast(settings.precision, device):
            outputs = model.outputs(model.frontend(windows)) if event_model else model(windows)
        if event_model:
            clip_logits, frame_logits = outputs
            averager.add(torch.sigmoid(frame_logits[:, inside.to(device)].float()), batch_starts // frame_hop)
        else:
            clip_logits = outputs
        scores.append(model.scores(clip_logits.float()).cpu())
    scores = torch.cat(scores)
    if event_model:
        frames = averager.mean()
        centres = offset_s + frame_hop_s * torch.arange(frames.shape[0], dtype=torch.float64)
        begin, end = tiling_spans(centres, frame_hop_s, duration)
        segments = merge_active(frames, begin, end, settings.threshold, model.class_names)
    else:
        centres = starts.double() / settings.sample_rate + settings.window / settings.sample_rate / 2
        begin, end = tiling_spans(centres, settings.hop / settings.sample_rate, duration)
        segments = merge_active(scores, begin, end, settings.threshold, model.class_names)
    return FilePrediction(duration, starts, scores, [s for s in segments if s.label not in settings.excluded])


def window_rows(name: str, prediction: FilePrediction, settings: Settings, class_names: list[str]) -> list[list]:
    top_scores, top_index = prediction.scores.topk(settings.top_k, dim=1)
    rows = []
    for start, values, indices in zip(prediction.starts.tolist(), top_scores.tolist(), top_index.tolist(), strict=True):
        start_s = start / settings.sample_rate
        end_s = min(start_s + settings.window / settings.sample_rate, prediction.duration_s)
        ranked = [item for index, value in zip(indices, values, strict=True) for item in (class_names[index], f"{value:.6g}")]
        rows.append([name, f"{start_s:.3f}", f"{end_s:.3f}", *ranked])
    return rows


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]predict"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def report_unreadable(unreadable: list[AudioReadError], processed: int, console: Console) -> None:
    table = Table(title=f"{len(unreadable)} unreadable file(s) skipped ({processed} processed)")
    table.add_column("file")
    table.add_column("reason")
    for error in unreadable:
        table.add_row(error.path, error.reason)
    console.print(table)


def predict(cfg: DictConfig) -> dict:
    """Runs the model over every input file; returns {"files", "unreadable", "windows", "events", paths}."""
    started = time.time()
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    files = list_inputs(cfg.inputs, cfg.extensions)
    model = load_for_inference(cfg.ckpt_path, OmegaConf.to_container(cfg.tome, resolve=True), resolve_device(cfg.device))
    settings = check_settings(cfg, model)
    names = model.class_names
    unreadable: list[AudioReadError] = []
    processed = windows = events = 0
    audio_seconds = 0.0
    console = Console(stderr=True)
    predictions_path, events_path = run_dir / PREDICTIONS_FILE, run_dir / EVENTS_FILE
    with predictions_path.open("w", newline="") as predictions_file, events_path.open("w", newline="") as events_file:
        predictions_csv, events_csv = csv.writer(predictions_file), csv.writer(events_file)
        ranks = range(1, settings.top_k + 1)
        predictions_csv.writerow(["file", "start_s", "end_s", *(f"{kind}_{k}" for k in ranks for kind in ("label", "score"))])
        events_csv.writerow(["file", "label", "onset_s", "offset_s", "score"])
        with progress_bar(console) as progress:
            task = progress.add_task("", total=len(files))
            for path in files:
                progress.update(task, description=path.name)
                try:
                    waveform = read_checked(path, settings.sample_rate)
                except AudioReadError as error:
                    unreadable.append(error)
                    progress.advance(task)
                    continue
                prediction = predict_waveform(model, waveform, settings)
                predictions_csv.writerows(window_rows(str(path), prediction, settings, names))
                for segment in prediction.segments:
                    events_csv.writerow([str(path), segment.label, f"{segment.onset:.3f}", f"{segment.offset:.3f}", f"{segment.score:.6g}"])
                processed += 1
                windows += len(prediction.starts)
                events += len(prediction.segments)
                audio_seconds += prediction.duration_s
                progress.advance(task)

    unreadable_path = None
    if unreadable:
        unreadable_path = run_dir / UNREADABLE_FILE
        with unreadable_path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "reason"])
            writer.writerows([error.path, error.reason] for error in unreadable)
        report_unreadable(unreadable, processed, console)
    if processed == 0:
        raise SystemExit(f"no input could be processed: all {len(files)} file(s) are unreadable (see {unreadable_path})")
    console.print(
        f"{processed} file(s), {audio_seconds / 60:.1f} min of audio, {windows} windows, {events} event segments "
        f"in {time.time() - started:.1f} s -> {predictions_path}, {events_path}"
    )
    return {
        "files": processed,
        "unreadable": [(error.path, error.reason) for error in unreadable],
        "windows": windows,
        "events": events,
        "predictions": str(predictions_path),
        "events_csv": str(events_path),
        "unreadable_csv": str(unreadable_path) if unreadable_path else None,
    }


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    check_known_keys(cfg, "predict")
    predict(cfg)


if __name__ == "__main__":
    main()
