"""trainer=ddp_cpu: two processes over gloo, as a job of a sweep; rank 0 alone records and prints."""

from __future__ import annotations

import pytest
import torch

from fast_ast.data.synthetic import SyntheticDataModule
from fast_ast.modules.checkpoint import load_classifier
from fast_ast.results import read_results
from tests.helpers import TINY_MODEL, run_module

# 16 validation clips: 8 per rank, so DistributedSampler pads nothing and each clip counts once.
DATA = {"train_size": 32, "val_size": 16, "test_size": 16, "batch_size": 8, "clip_seconds": 1.0}


def test_ddp_cpu_sweep_job_trains_on_two_processes_and_syncs_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one thread per rank
    process = run_module(
        "fast_ast.train", "-m", "seed=3", "trainer=ddp_cpu", *TINY_MODEL,
        *(f"data.{key}={value}" for key, value in DATA.items()),
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "throughput.repeats=1", "throughput.batch_size=2",
        "hydra.sweep.dir=sweep", cwd=tmp_path,
    )
    output = process.stdout + process.stderr
    assert "distributed_backend=gloo" in output and "Starting with 2 processes" in output
    assert output.count("fast_ast train — completed") == 1  # the summary, from rank 0 only
    # Rank 1 re-ran this job (not the sweep) in the job's directory: nothing else appeared.
    job = tmp_path / "sweep" / "0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0"]
    assert (job / "train_ddp_process_1.log").is_file()

    results = read_results(job)
    assert results["status"] == "completed" and results["overrides"][:2] == ["seed=3", "trainer=ddp_cpu"]
    # The synced validation metrics of the best weights equal one process evaluating every clip.
    model = load_classifier(results["checkpoints"]["best"])
    data = SyntheticDataModule(**DATA, features={"num_mel_bins": 128, "target_length": 100})
    clips = data.build_split("val")
    with torch.no_grad():
        logits = model(clips.audio)
    accuracy = (logits.argmax(-1) == clips.labels).float().mean().item()
    loss = torch.nn.functional.cross_entropy(logits, clips.labels).item()
    assert results["metrics"]["val/acc"] == accuracy
    assert results["metrics"]["val/loss"] == pytest.approx(loss, rel=1e-5)  # summed in another order across ranks
