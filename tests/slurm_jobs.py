"""Running sweeps through the local SLURM cluster (fast_ast/cluster/local_slurm.sh) from the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import REPO

CLUSTER_SCRIPT = REPO / "fast_ast" / "cluster" / "local_slurm.sh"
NODES = ("fa-node1", "fa-node2")
TIMEOUT_S = 400

needs_cluster = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("sinfo") is None,
        reason="no SLURM client (sinfo): start the local cluster with `make slurm-up NODES=2` (as root; .ci/run does)",
    ),
]


def start_sweep(tmp_path: Path, *args: str) -> subprocess.Popen:
    """`python -m fast_ast.train -m args... hydra.sweep.dir=<tmp_path>/sweep` in the background (its jobs import tests)."""
    env = {
        **os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fast_ast.train", "-m", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


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


def finish_sweep(launcher: subprocess.Popen, sweep: Path) -> str:
    """Waits for the launcher; on timeout or error kills it and cancels its jobs. Returns its output."""
    try:
        output, _ = launcher.communicate(timeout=TIMEOUT_S)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            cancel_sweep(sweep)
    assert launcher.returncode == 0, output[-5000:]
    return output


def cancel_sweep(sweep: Path) -> None:
    arrays = {p.name.split("_")[0] for p in (sweep / ".submitit").glob("*_*")}
    if arrays:
        subprocess.run(["scancel", *arrays], capture_output=True)


def job_id(job_dir: Path) -> str | None:
    """The SLURM id ("<array>_<task>") of a sweep job, from the .hydra/hydra.yaml it wrote; None until that
    file is there and whole (Hydra writes it in place, so it can be seen half written)."""
    path = job_dir / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return None
    written = OmegaConf.select(OmegaConf.load(path), "hydra.job.id")
    return None if written is None else str(written)


def job_state(job: str) -> tuple[str, str]:
    """(state, node list) of a queued job, e.g. ("RUNNING", "fa-node2"); ("", "") once it left the queue."""
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %N"], capture_output=True, text=True).stdout.split()
    return (out[0], out[1] if len(out) > 1 else "") if out else ("", "")


def submitit_logs(sweep: Path, job: str) -> str:
    """Every task's stdout and stderr of one job (submitit appends across requeues)."""
    files = sorted((sweep / ".submitit").glob(f"{job}/*_log.*"))
    return "".join(f.read_text(errors="replace") for f in files)
