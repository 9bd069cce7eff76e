"""`python -m fast_ast.eval ckpt_path=... [data=...] [split=test] [tome.r=...]`: evaluate a checkpoint.

The split runs through Lightning's validate/test loop with the model's own metrics, exactly as during
training (so evaluating the best checkpoint on `val` reproduces training's val metrics). Writes in the
run directory:
    metrics.json     {"<split>/<metric>": value}: acc, mAP, auc, d_prime, loss (+ frame metrics of event models)
    predictions.csv  id, labels (the true labels, ';'-joined), then one column of scores per class name
                     (softmax for single-label models, sigmoid for multi-label ones)
    results.json     task "eval" (fast_ast.results), with `checkpoint`, `split`, the token reduction used (`tome`),
                     and its costs: throughput_by_batch, gflops, peak_memory_mb (fast_ast.tome.cost)
`python -m fast_ast.eval -m ckpt_path=... tome.r=0,8,16` evaluates one checkpoint under many reductions
(a sweep `python -m fast_ast.report` reads as it reads training sweeps).
A clip classifier on long annotated recordings (data=events, a model without a frame head) is evaluated
windowed instead (fast_ast.inference.recordings, the `recordings` keys): metrics.json holds
<split>/segment/* and <split>/recording/*, predictions.csv one row per window (id, file, start_s, end_s,
labels, one score per class) and results.json a `recordings` entry (counts, window, hop, classes).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch import Callback
from omegaconf import DictConfig, OmegaConf

from fast_ast.config_keys import check_known_keys
from fast_ast.data.datamodule import SPLITS, AudioDataModule
from fast_ast.inference.model import is_event_model, load_for_inference, tome_setting
from fast_ast.inference.recordings import WindowSettings, evaluate_recordings, write_window_predictions
from fast_ast.modules.classifier import AudioClassifier
from fast_ast.precision import autocast, check_precision
from fast_ast.resolvers import CONF_DIR, register_resolvers
from fast_ast.results import model_record, this_job_overrides, write_results
from fast_ast.summary import print_summary
from fast_ast.tome.cost import peak_forward_bytes, throughput_by_batch
from fast_ast.tome.flops import ast_forward_flops

log = logging.getLogger(__name__)
register_resolvers()

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"


class ClipScoreRecorder(Callback):
    """Collects every evaluated clip's id, target and class scores [C] during validate/test.

    The scores are read from the classification head's output (a forward hook on `backbone.classifier`, which
    every model type calls once per batch), so the evaluation forward pass is not repeated.
    """

    def __init__(self):
        self.ids: list[str] = []
        self.targets: list[torch.Tensor] = []
        self.scores: list[torch.Tensor] = []
        self.pending: list[torch.Tensor] = []
        self.hook = None

    def start(self, pl_module: AudioClassifier) -> None:
        self.hook = pl_module.backbone.classifier.register_forward_hook(lambda module, inputs, output: self.pending.append(output.detach()))

    def stop(self) -> None:
        if self.hook is not None:
            self.hook.remove()
            self.hook = None

    def record(self, pl_module: AudioClassifier, batch: dict) -> None:
        if len(self.pending) != 1:
            raise RuntimeError(f"expected one classification-head call per evaluation batch, saw {len(self.pending)}")
        logits = self.pending.pop()
        self.scores.append(pl_module.scores(logits.float()).cpu())
        self.targets.append(batch["target"].cpu())
        self.ids.extend(str(clip_id) for clip_id in batch["id"])

    def on_validation_start(self, trainer, pl_module) -> None:
        self.start(pl_module)

    def on_test_start(self, trainer, pl_module) -> None:
        self.start(pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        self.stop()

    def on_test_end(self, trainer, pl_module) -> None:
        self.stop()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.record(pl_module, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.record(pl_module, batch)


def check_compatible(model: AudioClassifier, datamodule: AudioDataModule) -> None:
    """The corpus must have the checkpoint's classes (same order) and sample rate."""
    if list(datamodule.class_names) != list(model.class_names):
        missing = [name for name in model.class_names if name not in datamodule.class_names]
        extra = [name for name in datamodule.class_names if name not in model.class_names]
        raise ValueError(
            f"the corpus's classes differ from the checkpoint's ({len(datamodule.class_names)} vs {len(model.class_names)}; "
            f"not in the corpus: {missing[:10]}, not in the checkpoint: {extra[:10]}"
            + ("; same names in another order" if not missing and not extra else "")
            + ")"
        )
    if datamodule.multilabel != model.multilabel:
        raise ValueError(f"the corpus is {'multi' if datamodule.multilabel else 'single'}-label, the checkpoint is not")
    if datamodule.sample_rate != model.hparams.sample_rate:
        raise ValueError(f"data.sample_rate={datamodule.sample_rate} but the checkpoint was trained at {model.hparams.sample_rate} Hz")
    if datamodule.clip_samples != model.hparams.clip_samples:
        log.warning(
            "data clips are %d samples, the checkpoint was trained on %d: features are padded/cropped to its %d frames",
            datamodule.clip_samples, model.hparams.clip_samples, model.frontend.target_length,
        )


def true_labels(target: torch.Tensor, class_names: list[str]) -> str:
    """A class index, or a multi-hot [C] row -> ';'-joined class names."""
    if target.dim() == 0:
        return class_names[int(target)]
    return ";".join(name for name, on in zip(class_names, target.tolist(), strict=True) if on > 0.5)


def write_predictions(path: Path, recorder: ClipScoreRecorder, class_names: list[str]) -> None:
    scores, targets = torch.cat(recorder.scores), torch.cat(recorder.targets)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "labels", *class_names])
        for clip_id, target, row in zip(recorder.ids, targets, scores.tolist(), strict=True):
            writer.writerow([clip_id, true_labels(target, class_names), *(f"{value:.6g}" for value in row)])


def run_split(trainer: L.Trainer, model: AudioClassifier, datamodule: AudioDataModule, split: str) -> dict[str, float]:
    """Metrics of `model` on `split`, named '<split>/<metric>' (train runs the test loop on un-augmented clips)."""
    datamodule.datasets[split] = datamodule.plain_split(split)
    loader = datamodule.loader(split, datamodule.eval_batch_size, shuffle=False)
    if split == "val":
        results = trainer.validate(model, dataloaders=loader, verbose=False)
    else:
        results = trainer.test(model, dataloaders=loader, verbose=False)
    metrics = {key: float(value) for result in results for key, value in result.items()}
    if split == "train":
        metrics = {"train/" + key.removeprefix("test/"): value for key, value in metrics.items()}
    return metrics


def reduction_costs(model: AudioClassifier, cfg: DictConfig) -> dict:
    """throughput_by_batch (clips/s at each of throughput.batch_sizes, alternating), gflops (forward
    FLOPs per clip under the token reduction evaluated; null for backbones without tokens) and
    peak_memory_mb (tensors one forward of a throughput.batch_size batch allocates) (fast_ast.tome.cost)."""
    backbone = model.backbone
    device = next(model.parameters()).device
    example = torch.randn(cfg.throughput.batch_size, model.hparams.clip_samples, device=device) * 0.1
    flops = ast_forward_flops(backbone, backbone.token_reduction) if backbone.supports_token_merging else None
    return {
        "throughput_by_batch": throughput_by_batch(
            model, model.hparams.clip_samples, list(cfg.throughput.batch_sizes), cfg.throughput.repeats, device
        ),
        "gflops": None if flops is None else flops / 1e9,
        "peak_memory_mb": peak_forward_bytes(model, example) / 2**20,
    }


def evaluate_clips(cfg: DictConfig, model: AudioClassifier, datamodule: AudioDataModule, run_dir: Path) -> tuple[dict, str, torch.device, dict]:
    """The split's clips through Lightning's loop: (metrics, monitor name, device, no extra results)."""
    check_compatible(model, datamodule)
    datamodule.prepare_data()
    datamodule.setup("test")
    recorder = ClipScoreRecorder()
    trainer: L.Trainer = instantiate(
        cfg.trainer, logger=False, callbacks=[recorder], enable_checkpointing=False, enable_model_summary=False
    )
    check_precision(cfg.precision, trainer.strategy.root_device)
    metrics = run_split(trainer, model, datamodule, cfg.split)
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    write_predictions(run_dir / PREDICTIONS_FILE, recorder, model.class_names)
    monitor = f"{cfg.split}/" + str(cfg.data.monitor).split("/", 1)[-1]
    return metrics, monitor, trainer.strategy.root_device, {}


def evaluate_windows(cfg: DictConfig, model: AudioClassifier, datamodule: AudioDataModule, run_dir: Path) -> tuple[dict, str, torch.device, dict]:
    """A clip classifier on annotated recordings (data=events), windowed (fast_ast.inference.recordings):
    (segment and recording metrics, monitor '<split>/segment/mAP', device, the `recordings` results entry)."""
    settings = WindowSettings(**OmegaConf.to_container(cfg.recordings, resolve=True))
    trainer: L.Trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False, enable_model_summary=False)
    device = trainer.strategy.root_device  # only for its device, as for clips
    check_precision(cfg.precision, device)
    model.to(device)
    evaluation = evaluate_recordings(model, datamodule, cfg.split, settings, cfg.precision)
    (run_dir / METRICS_FILE).write_text(json.dumps(evaluation.metrics, indent=2) + "\n")
    write_window_predictions(run_dir / PREDICTIONS_FILE, evaluation)
    extra = {
        "recordings": {
            "count": evaluation.recordings,
            "windows": evaluation.windows,
            "window_s": evaluation.window_s,
            "hop_s": evaluation.hop_s,
            "aggregate": settings.aggregate,
            "threshold": settings.threshold,
            "classes": evaluation.classes,
        }
    }
    return evaluation.metrics, f"{cfg.split}/segment/mAP", device, extra


def evaluate(cfg: DictConfig) -> dict:
    """Evaluates cfg.ckpt_path on cfg.split of cfg.data; returns the results (also in <run dir>/results.json)."""
    started = time.time()
    if cfg.split not in SPLITS:
        raise ValueError(f"split={cfg.split!r}: choose one of {SPLITS}")
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    override = OmegaConf.to_container(cfg.tome, resolve=True)
    model = load_for_inference(cfg.ckpt_path, override, torch.device("cpu"))
    tome = tome_setting(model.hparams.get("tome"), override)

    datamodule = instantiate(cfg.data)
    if getattr(datamodule, "has_frame_targets", False) and not is_event_model(model):
        metrics, monitor, device, extra = evaluate_windows(cfg, model, datamodule, run_dir)
    else:
        metrics, monitor, device, extra = evaluate_clips(cfg, model, datamodule, run_dir)
    model.to(device)  # Lightning may have moved the model back to the CPU after the loop
    with autocast(cfg.precision, device):  # the throughput figure at the evaluated precision
        record = model_record(model, cfg.throughput.batch_size, cfg.throughput.repeats)
    results = {
        "task": "eval",
        "status": "completed",
        "run_dir": str(run_dir.resolve()),
        "overrides": this_job_overrides(),
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "split": cfg.split,
        "monitor": {"name": monitor, "best": metrics.get(monitor)},
        "metrics": metrics,
        **extra,
        "checkpoints": {"evaluated": str(Path(cfg.ckpt_path).resolve())},
        **record,
        "precision": cfg.precision,
        **reduction_costs(model, cfg),
        "tome": tome,
        "kd": None,
        "wall_time_s": time.time() - started,
    }
    write_results(run_dir, results)
    print_summary(results)
    return results


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> float | None:
    check_known_keys(cfg, "eval")
    results = evaluate(cfg)
    return results["monitor"]["best"]


if __name__ == "__main__":
    main()
