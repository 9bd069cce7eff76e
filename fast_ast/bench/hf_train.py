"""suite=hf_train: training speed against the path Hugging Face users come from, on the same weights and clips.

    python -m fast_ast.bench suite=hf_train model/backbone=base384 data.clip_seconds=10.24 \
        data.features.target_length=1024 [hf_train_suite.clips=8 hf_train_suite.batch_size=2]

transformers side, as a `Trainer` user runs it: `ASTForAudioClassification` loaded from this project's
weights (written as a HF directory, as suite=hf), features from `ASTFeatureExtractor` computed on the CPU
in the dataset (`with_transform`-style, per clip, in the DataLoader), `default_data_collator`, and
the Trainer's step: model(input_values, labels) -> outputs.loss, backward, AdamW step, zero_grad.
(transformers' `Trainer` itself needs `accelerate`, which this project does not depend on; the loop is
the Trainer's inner step with its defaults: AdamW, lr 5e-5, dataloader_num_workers 0.)
This project's side: the DataLoader yields waveforms, and the step runs the batched fbank frontend on the
training device (AudioClassifier.train_features) + the AST + the label loss + the configured optimizer.

Both sides get the same generated corpus (data=synthetic's clips at data.clip_seconds), batch size and
worker count. Per step: single training steps on one batch, alternating (median ratio). End to end: whole
epochs over the corpus (data loading, features, forward, backward, optimizer), alternating, the first
epoch of each side discarded as warm-up; clips/s = clips / epoch time. `project_r` adds ToMe contenders
(r > 0 changes the computation: see suite=tome for its accuracy cost). Results: <run dir>/hf_train_bench.json.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset

from fast_ast.backbones.hf_keys import ast_to_hf, hf_config
from fast_ast.device import device_description, resolve_device
from fast_ast.measure.timing import alternating_times, median_ratio
from fast_ast.data.synthetic import SyntheticClips
from fast_ast.modules.build import build_model
from fast_ast.modules.optim import build_optimizer
from fast_ast.tome import apply_tome

HF_TRAINER_LR = 5e-5  # TrainingArguments.learning_rate default


class ExtractedFeatures(Dataset):
    """Clips -> {"input_values": [T, F] ASTFeatureExtractor features, "labels": int}, computed per item on the CPU."""

    def __init__(self, clips: SyntheticClips, extractor, sample_rate: int):
        self.clips, self.extractor, self.sample_rate = clips, extractor, sample_rate

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        item = self.clips[index]
        features = self.extractor(item["audio"].numpy(), sampling_rate=self.sample_rate, return_tensors="pt")
        return {"input_values": features["input_values"][0], "labels": item["target"]}


def hf_pair(model, features: dict) -> tuple[torch.nn.Module, object]:
    """(transformers' ASTForAudioClassification with `model.backbone`'s weights, its ASTFeatureExtractor)."""
    from transformers import ASTFeatureExtractor, ASTForAudioClassification

    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "config.json").write_text(json.dumps(hf_config(model.backbone)))
        save_file(ast_to_hf(model.backbone.state_dict()), os.path.join(directory, "model.safetensors"))
        theirs = ASTForAudioClassification.from_pretrained(directory)
    extractor = ASTFeatureExtractor(
        num_mel_bins=model.frontend.num_mel_bins, max_length=model.frontend.target_length,
        mean=features["norm_mean"], std=features["norm_std"], sampling_rate=model.hparams.sample_rate,
    )
    return theirs, extractor


def hf_step(model, optimizer, device):
    def step(batch: dict) -> torch.Tensor:
        outputs = model(input_values=batch["input_values"].to(device), labels=batch["labels"].to(device))
        outputs.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return outputs.loss

    return step


def project_step(model, optimizer, device):
    def step(batch: dict) -> torch.Tensor:
        audio = batch["audio"].to(device)
        view = {"audio": audio, "view_seed": batch.get("view_seed", torch.arange(audio.shape[0]))}
        logits = model.backbone(model.train_features(view))
        loss = model.label_loss(logits, model.target_matrix(batch["target"].to(device)))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def epoch(loader: DataLoader, step) -> None:
    for batch in loader:
        step(batch)


def run(cfg: DictConfig) -> dict:
    settings = cfg.hf_train_suite
    if settings.epochs < 2:
        raise ValueError(f"hf_train_suite.epochs={settings.epochs}: need >= 2 (the first epoch of each side is warm-up)")
    device = resolve_device(cfg.device)
    datamodule = instantiate(cfg.data)
    base = cfg.copy()
    base.tome.r = 0
    ours = build_model(base, datamodule).to(device)
    theirs, extractor = hf_pair(ours, dict(datamodule.features))
    theirs.to(device).train()
    ours.train()
    clips = SyntheticClips(settings.clips, int(cfg.data.seed), "train", datamodule.clip_samples, datamodule.sample_rate)
    hf_data = ExtractedFeatures(clips, extractor, datamodule.sample_rate)
    loader_args = {"batch_size": settings.batch_size, "shuffle": True, "num_workers": settings.num_workers, "drop_last": False}
    from transformers import default_data_collator

    loaders = {
        "transformers": DataLoader(hf_data, collate_fn=default_data_collator, **loader_args),
        "fast_ast": DataLoader(clips, **loader_args),
    }
    steps = {"transformers": hf_step(theirs, torch.optim.AdamW(theirs.parameters(), lr=HF_TRAINER_LR), device)}
    contender_loader = {"transformers": "transformers"}
    tome = OmegaConf.to_container(cfg.tome, resolve=True)
    optim = OmegaConf.to_container(cfg.model.optim, resolve=True)
    for r in dict.fromkeys([0, *settings.project_r]):
        model = ours if r == 0 else build_model(base, datamodule).to(device).train()
        if r:
            model.load_state_dict(ours.state_dict())
            apply_tome(model.backbone, r=r, inflection=tome["inflection"], prop_attn=tome["prop_attn"])
        name = "fast_ast" if r == 0 else f"fast_ast_r{r}"
        steps[name] = project_step(model, build_optimizer(model.parameters(), optim), device)
        contender_loader[name] = "fast_ast"

    # equal computation check (before any weight update): the same clips give the same logits
    probe = next(iter(DataLoader(clips, batch_size=settings.batch_size)))
    with torch.no_grad():
        ours.eval()
        theirs.eval()
        features = torch.stack([hf_data[i]["input_values"] for i in range(len(probe["target"]))]).to(device)
        difference = (ours(probe["audio"].to(device)) - theirs(input_values=features).logits).abs().max().item()
        ours.train()
        theirs.train()

    one_batch = {name: next(iter(loaders[loader])) for name, loader in contender_loader.items()}
    step_times = alternating_times(
        {name: (lambda s=step, b=one_batch[name]: s(b)) for name, step in steps.items()}, device, warmup=1, repeats=settings.step_repeats
    )
    epoch_times = alternating_times(
        {name: (lambda s=step, l=loaders[contender_loader[name]]: epoch(l, s)) for name, step in steps.items()},
        device, warmup=1, repeats=settings.epochs - 1,
    )

    rows = []
    for name in steps:
        rows.append({
            "side": name,
            "step_s": statistics.median(step_times[name]),
            "step_speedup_vs_transformers": median_ratio(step_times["transformers"], step_times[name]),
            "epoch_s": statistics.median(epoch_times[name]),
            "end_to_end_clips_per_s": settings.clips / statistics.median(epoch_times[name]),
            "end_to_end_speedup_vs_transformers": median_ratio(epoch_times["transformers"], epoch_times[name]),
        })
    backbone_cfg = cfg.model.backbone
    result = {
        "device": device_description(device),
        "backbone": f"embed_dim {backbone_cfg.embed_dim}, depth {backbone_cfg.depth}, heads {backbone_cfg.num_heads}",
        "input": f"{ours.frontend.target_length} frames x {ours.frontend.num_mel_bins} bins, {ours.backbone.num_tokens} tokens",
        "clips": settings.clips,
        "batch_size": settings.batch_size,
        "num_workers": settings.num_workers,
        "step_repeats": settings.step_repeats,
        "epochs_timed": settings.epochs - 1,
        "max_abs_logit_diff": difference,
        "rows": rows,
        "seconds": {"step": step_times, "epoch": epoch_times},
    }
    report(result)
    out_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "hf_train_bench.json").write_text(json.dumps(result, indent=2))
    Console().print(f"wrote {out_dir / 'hf_train_bench.json'}")
    return result


def report(result: dict) -> None:
    table = Table(title=(
        f"training: transformers (ASTFeatureExtractor in the pipeline) vs fast_ast (frontend on the device) — {result['backbone']}, "
        f"{result['input']}, {result['clips']} clips, batch {result['batch_size']}, {result['num_workers']} workers — {result['device']}"
    ))
    for column in ("side", "step s", "step speedup", "epoch s", "end-to-end clips/s", "end-to-end speedup"):
        table.add_column(column, justify="right")
    for row in result["rows"]:
        table.add_row(
            row["side"], f"{row['step_s']:.3f}", f"{row['step_speedup_vs_transformers']:.2f}x", f"{row['epoch_s']:.2f}",
            f"{row['end_to_end_clips_per_s']:.3f}", f"{row['end_to_end_speedup_vs_transformers']:.2f}x",
        )
    Console(width=160).print(table)
    Console().print(f"same weights and clips: max |Δ logit| before training {result['max_abs_logit_diff']:.1e}")
