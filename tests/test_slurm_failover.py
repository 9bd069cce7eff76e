"""A node fails mid-sweep on the two-node local cluster: its job fails over to the other node and resumes.

A 2-job sweep whose jobs train identically (they differ only in throughput.repeats); the partition's
LLN scheduling puts one on each node. After the job on fa-node2 wrote its first checkpoint, every
process of that node (its slurmd, the job step, the training) is killed. SLURM marks the node DOWN
(SlurmdTimeout), requeues the job, starts it on fa-node1, and it resumes from last.ckpt: it must end
with exactly the weights and metrics of the job that ran uninterrupted, and the sweep directory must
hold each job's files once. The node is brought back with `local_slurm.sh up 2` afterwards.
"""

from __future__ import annotations

import subprocess

import torch

from fast_ast.report import report
from fast_ast.results import read_results
from tests.helpers import TINY_MODEL
from tests.slurm_jobs import (
    CLUSTER_SCRIPT, NODES, finish_sweep, job_id, job_state, needs_cluster, start_sweep, submitit_logs, wait_for,
)

pytestmark = needs_cluster

SWEEP = (
    "throughput.repeats=1,2", "hydra/launcher=slurm_local", *TINY_MODEL,
    "data.train_size=96", "data.val_size=16", "data.test_size=16", "data.batch_size=16",
    "trainer.max_epochs=6", "trainer.enable_progress_bar=false", "throughput.batch_size=2",
)  # 5 epochs left after the first checkpoint: time enough to kill the node mid-training


def kill_node(node: str) -> None:
    """Every process in the node's network namespace, at once: what a power failure leaves."""
    pids = subprocess.run(["ip", "netns", "pids", node], check=True, capture_output=True, text=True).stdout.split()
    assert pids, f"nothing runs on {node}"
    subprocess.run(["kill", "-9", *pids], check=True)


def test_node_failure_mid_sweep_requeues_the_job_on_the_other_node_and_it_resumes(tmp_path):
    sweep = tmp_path / "sweep"
    launcher = start_sweep(tmp_path, *SWEEP)
    jobs = {n: sweep / n for n in ("0", "1")}
    try:
        wait_for(lambda: all(job_id(d) for d in jobs.values()), "both jobs to start", launcher)
        ids = {n: job_id(d) for n, d in jobs.items()}
        nodes = {n: wait_for(lambda n=n: job_state(ids[n])[1], f"job {n}'s node", launcher) for n in jobs}
        assert sorted(nodes.values()) == list(NODES), f"the sweep did not spread over the nodes: {nodes}"
        victim = next(n for n, node in nodes.items() if node == NODES[1])
        survivor = next(n for n in jobs if n != victim)
        wait_for(lambda: (jobs[victim] / "checkpoints" / "last.ckpt").is_file(), f"job {victim}'s first checkpoint", launcher)
        assert not (jobs[victim] / "results.json").exists(), f"job {victim} finished before its node could fail"
        kill_node(NODES[1])
        # SLURM notices within SlurmdTimeout, requeues the job (held cred_expire s), then starts it on fa-node1.
        wait_for(lambda: job_state(ids[victim]) == ("RUNNING", NODES[0]) and (jobs[victim] / "train.log").read_text().count("resume=auto") == 1,
                 f"job {victim} running again on {NODES[0]}", launcher, poll=0.5)
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "up", "2"], check=True, capture_output=True, timeout=120)  # the node is back
        finish_sweep(launcher, sweep)
    finally:
        if launcher.poll() is None:
            launcher.kill()
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "up", "2"], capture_output=True, timeout=120)

    assert "resume=auto: continuing from" in (jobs[victim] / "train.log").read_text()
    assert "resume=auto" not in (jobs[survivor] / "train.log").read_text()
    resumed, uninterrupted = read_results(jobs[victim]), read_results(jobs[survivor])
    assert resumed["status"] == uninterrupted["status"] == "completed"
    assert resumed["metrics"] == uninterrupted["metrics"]
    assert resumed["monitor"] == uninterrupted["monitor"]
    weights = [torch.load(jobs[n] / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for n in (victim, survivor)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[1])

    # Nothing lost or duplicated: the two job directories, each with one best and one last checkpoint,
    # one results.json; the summary printed once per job.
    assert sorted(p.name for p in sweep.iterdir()) == [".submitit", "0", "1", "multirun.yaml"]
    for n, d in jobs.items():
        # best, last and the last it replaced (kept by the atomic writer), each once
        names = sorted(p.name for p in (d / "checkpoints").iterdir())
        assert names == sorted([read_results(d)["checkpoints"]["best"].rsplit("/", 1)[1], "last.ckpt", "last.prev.ckpt"])
        assert submitit_logs(sweep, ids[n]).count("fast_ast train — completed") == 1
    rows = (report(sweep)["csv"]).read_text().splitlines()
    assert [row.split(",")[:3] for row in rows[1:]] == [["0", "completed", "1"], ["1", "completed", "2"]]
