"""hydra/launcher=slurm on a real SLURM cluster (CI: the one-node cluster of fast_ast/cluster/local_slurm.sh).

A 2-job sweep whose jobs train identically (they differ only in throughput.repeats); job 0 is requeued
with `scontrol requeue` after its first epoch's checkpoint, restarts in its own directory, resumes from
last.ckpt and must end with exactly the weights and metrics of job 1, which ran uninterrupted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from omegaconf import OmegaConf

from fast_ast.report import report
from fast_ast.results import read_results
from tests.helpers import REPO, TINY_MODEL

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("sinfo") is None,
        reason="no SLURM client (sinfo): start a local cluster with `make slurm-up` (as root; .ci/run does)",
    ),
]

SWEEP = (
    "-m", "throughput.repeats=1,2", "hydra/launcher=slurm_local", *TINY_MODEL,
    "data.train_size=96", "data.val_size=16", "data.test_size=16", "data.batch_size=16",
    "trainer.max_epochs=6", "trainer.enable_progress_bar=false", "throughput.batch_size=2",
)  # 5 epochs left after the first checkpoint: time enough to requeue the job mid-training
TIMEOUT_S = 400


def wait_for(condition, what: str, launcher: subprocess.Popen, timeout: float = TIMEOUT_S, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if launcher.poll() is not None:
            raise AssertionError(f"the sweep ended ({launcher.returncode}) before {what}:\n{launcher.communicate()[0][-5000:]}")
        time.sleep(poll)
    launcher.kill()
    raise AssertionError(f"timed out waiting for {what}:\n{launcher.communicate()[0][-5000:]}")


def job_state(job_id: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def test_slurm_sweep_with_a_requeued_job_resumes_and_matches_the_uninterrupted_one(tmp_path):
    subprocess.run(["sinfo"], check=True, capture_output=True)  # the cluster answers
    sweep = tmp_path / "sweep"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "fast_ast.train", *SWEEP, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        job0 = sweep / "0"
        wait_for(lambda: (job0 / "checkpoints" / "last.ckpt").is_file(), "job 0's first checkpoint", launcher)
        job_id = str(OmegaConf.load(job0 / ".hydra" / "hydra.yaml").hydra.job.id)  # "<array>_0"
        assert not (job0 / "results.json").exists(), "job 0 finished before it could be requeued"
        subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True)
        # SLURM holds a requeued job for 2 minutes (BeginTime); release it once it is pending. Not in the
        # second its old allocation was revoked: slurmd would refuse the new one ("credential revoked").
        wait_for(lambda: job_state(job_id) == "PENDING", f"job {job_id} pending again", launcher, poll=0.2)
        time.sleep(2)
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True, capture_output=True)
        output, _ = launcher.communicate(timeout=TIMEOUT_S)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            arrays = {p.name.split("_")[0] for p in (sweep / ".submitit").glob("*_*")}
            subprocess.run(["scancel", *arrays], capture_output=True)
    assert launcher.returncode == 0, output[-5000:]

    assert "resume=auto: continuing from" in (job0 / "train.log").read_text()
    requeued, uninterrupted = read_results(job0), read_results(sweep / "1")
    assert requeued["status"] == uninterrupted["status"] == "completed"
    assert requeued["metrics"] == uninterrupted["metrics"]
    assert requeued["monitor"] == uninterrupted["monitor"]
    weights = [torch.load(sweep / n / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for n in ("0", "1")]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])

    rows = (report(sweep)["csv"]).read_text().splitlines()
    assert [row.split(",")[:3] for row in rows[1:]] == [["0", "completed", "1"], ["1", "completed", "2"]]


def test_local_cluster_script_is_idempotent():
    if os.geteuid() != 0:
        pytest.skip("fast_ast/cluster/local_slurm.sh starts daemons: root only")
    process = subprocess.run(["bash", str(REPO / "fast_ast" / "cluster" / "local_slurm.sh")], capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr
    assert "partition debug" in process.stdout
    assert subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True).stdout.split() == ["debug*", "up"]
