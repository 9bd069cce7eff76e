"""Multi-node DDP on the two-node local cluster, and SLURM's time-limit signal (SIGUSR1) mid-training.

A 2-job sweep of 2-node DDP jobs (gloo on CPU, one task per node) that train identically (they differ
only in throughput.repeats). Job 0 gets SIGUSR1 after its first checkpoint, as SLURM sends it
signal_delay_s before the time limit: submitit requeues it, it runs again on both nodes, resumes from
last.ckpt and must end with exactly the weights and metrics of job 1, which ran uninterrupted.
"""

from __future__ import annotations

import subprocess

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fast_ast.modules.checkpoint import load_classifier
from fast_ast.report import report
from fast_ast.results import read_results
from tests.helpers import TINY_MODEL
from tests.slurm_jobs import NODES, finish_sweep, job_id, needs_cluster, start_sweep, submitit_logs, wait_for

pytestmark = needs_cluster

# 96 training clips: 48 per rank, 3 steps of 16 per epoch; 16 validation clips: 8 per rank, no padding.
DATA = {"train_size": 96, "val_size": 16, "test_size": 16, "batch_size": 16}
SWEEP = (
    "throughput.repeats=1,2", "hydra/launcher=slurm_local",
    "hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=1", "trainer.num_nodes=2", "trainer.strategy=ddp",
    *TINY_MODEL, *(f"data.{key}={value}" for key, value in DATA.items()),
    "trainer.max_epochs=6", "trainer.enable_progress_bar=false", "throughput.batch_size=2",
)  # 5 epochs left after the first checkpoint: time enough to signal the job mid-training


PROBE = ("+callbacks.rank_probe._target_=tests.rank_probe.RankProbe", "+callbacks.rank_probe.out_dir=${paths.output_dir}")


def read_probes(job_dir) -> list[dict]:
    return [torch.load(job_dir / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]


def test_two_node_ddp_sweep_with_a_sigusr1_requeued_job_resumes_and_matches_the_uninterrupted_one(tmp_path):
    sweep = tmp_path / "sweep"
    launcher = start_sweep(tmp_path, *SWEEP, *PROBE)
    job0 = sweep / "0"
    try:
        wait_for(lambda: (job0 / "checkpoints" / "last.ckpt").is_file(), "job 0's first checkpoint", launcher)
        job = job_id(job0)
        assert not (job0 / "results.json").exists(), "job 0 finished before it could be signalled"
        # What SLURM sends signal_delay_s before the time limit (sbatch --signal=USR1@...): every task gets it.
        subprocess.run(["scancel", "--signal=USR1", job], check=True, capture_output=True)
        output = finish_sweep(launcher, sweep)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert "Requeued job" in submitit_logs(sweep, job)  # submitit on rank 0: scontrol requeue
    submission = next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --signal=USR1@120" in submission and "#SBATCH --nodes=2" in submission

    # Rank 0 alone wrote results.json and printed the summary, once, in the run that completed.
    for n in ("0", "1"):
        logs = submitit_logs(sweep, job_id(sweep / n))
        assert logs.count("fast_ast train — completed") == 1, logs[-3000:]
        assert "distributed_backend=gloo" in logs and "MEMBER: 2/2" in logs
    assert "resume=auto: continuing from" in (job0 / "train.log").read_text()
    requeued, uninterrupted = read_results(job0), read_results(sweep / "1")
    assert requeued["status"] == uninterrupted["status"] == "completed"
    assert requeued["metrics"] == uninterrupted["metrics"]
    assert requeued["monitor"] == uninterrupted["monitor"]
    weights = [torch.load(sweep / n / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for n in ("0", "1")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[1])

    # Gradients are averaged: the ranks, one per node, train on different halves of every epoch and
    # still end with the same weights (those of last.ckpt).
    train_ids = {f"train-{i:06d}" for i in range(DATA["train_size"])}
    for n in ("0", "1"):
        rank0, rank1 = read_probes(sweep / n)
        assert (rank0["rank"], rank1["rank"], rank0["world_size"]) == (0, 1, 2)
        assert {rank0["node"], rank1["node"]} == set(NODES)
        for epoch, seen in rank0["seen"].items():
            assert not set(seen) & set(rank1["seen"][epoch]), f"job {n} epoch {epoch}: both ranks trained on the same clips"
            assert set(seen) | set(rank1["seen"][epoch]) == train_ids
        assert all(torch.equal(rank0["weights"][k], rank1["weights"][k]) for k in rank0["weights"])
        assert all(torch.equal(rank0["weights"][k], weights[int(n)][k]) for k in rank0["weights"])
    assert len(read_probes(sweep / "1")[0]["seen"]) == 6 and len(read_probes(job0)[0]["seen"]) < 6  # job 0 resumed

    # The metrics synced over the two ranks equal one process evaluating every clip with the best weights.
    model = load_classifier(uninterrupted["checkpoints"]["best"])
    clips = instantiate(OmegaConf.load(sweep / "1" / ".hydra" / "config.yaml").data).build_split("val")
    with torch.no_grad():
        logits = model(clips.audio)
    assert uninterrupted["metrics"]["val/acc"] == pytest.approx((logits.argmax(-1) == clips.labels).double().mean().item(), abs=1e-7)
    assert uninterrupted["metrics"]["val/loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, clips.labels).item(), rel=1e-5)

    rows = (report(sweep)["csv"]).read_text().splitlines()
    assert [row.split(",")[:3] for row in rows[1:]] == [["0", "completed", "1"], ["1", "completed", "2"]]
    assert "Traceback" not in output
