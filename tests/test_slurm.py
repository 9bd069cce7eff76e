"""The local cluster of fast_ast/cluster/local_slurm.sh (`make slurm-up NODES=2`): its topology, that
its traffic stays on loopback and the links it made, that `up` is idempotent and `down` leaves nothing.

The sweeps through it: tests/test_slurm_ddp.py (multi-node DDP, SIGUSR1) and tests/test_slurm_failover.py.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path

import pytest

from tests.slurm_jobs import CLUSTER_SCRIPT, NODES, needs_cluster

pytestmark = [
    *needs_cluster,
    pytest.mark.skipif(os.geteuid() != 0, reason="fast_ast/cluster/local_slurm.sh makes namespaces and starts daemons: root only"),
]

SUBNET = ipaddress.ip_network("10.213.0.0/24")
NODE_ADDRS = {"fa-node1": "10.213.0.11", "fa-node2": "10.213.0.12"}
UTS_DIR = Path("/run/fast_ast_slurm")


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


def cluster(action: str) -> subprocess.CompletedProcess:
    process = run("bash", str(CLUSTER_SCRIPT), action, *(["2"] if action == "up" else []))
    assert process.returncode == 0, process.stderr
    return process


def listening(namespace: str | None) -> list[tuple[str, str]]:
    """(local address, process) of every listening TCP socket of the daemons in a network namespace."""
    command = ["ss", "-Hltnp"] if namespace is None else ["ip", "netns", "exec", namespace, "ss", "-Hltnp"]
    sockets = []
    for line in run(*command).stdout.splitlines():
        fields = line.split()
        if "slurm" in line or "munge" in line:
            sockets.append((fields[3].rsplit(":", 1)[0].strip("[]"), fields[-1]))
    return sockets


def slurmd_pid(node: str) -> int:
    return int(Path(f"/run/slurmd-{node}.pid").read_text())


def test_two_nodes_each_in_its_own_network_and_uts_namespace_on_a_private_bridge():
    cluster("up")
    states = dict(line.split() for line in run("sinfo", "-h", "-N", "-o", "%N %T").stdout.splitlines())
    assert states == {node: "idle" for node in NODES}
    for node in NODES:
        pid = slurmd_pid(node)
        assert str(pid) in run("ip", "netns", "pids", node).stdout.split()
        assert os.stat(f"/proc/{pid}/ns/uts").st_ino == os.stat(UTS_DIR / f"{node}.uts").st_ino
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{node}").st_ino != os.stat(f"/proc/{os.getpid()}/ns/net").st_ino
        assert run("nsenter", f"--uts={UTS_DIR / f'{node}.uts'}", "hostname").stdout.strip() == node
        addresses = run("ip", "-n", node, "-o", "-4", "addr", "show").stdout
        assert f"inet {NODE_ADDRS[node]}/24" in addresses and addresses.count("inet ") == 2  # lo + eth0


def test_daemons_listen_only_on_loopback_or_the_cluster_subnet():
    cluster("up")
    sockets = {None: listening(None), **{node: listening(node) for node in NODES}}
    assert any("slurmctld" in proc for _, proc in sockets[None])
    assert all(any("slurmd" in proc for _, proc in sockets[node]) for node in NODES)
    for namespace, found in sockets.items():
        for address, proc in found:
            ip = ipaddress.ip_address(address)
            assert ip in SUBNET or ip.is_loopback, f"{proc} listens on {address} in {namespace or 'the root namespace'}"


def test_a_two_node_batch_job_runs_one_task_on_each_node(tmp_path):
    cluster("up")
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\nsrun bash -c 'echo $SLURM_PROCID $(hostname) $(hostname -I)'\n")
    out = tmp_path / "job.out"
    run("sbatch", "--wait", "--nodes=2", "--ntasks-per-node=1", f"--output={out}", str(script), cwd=tmp_path)
    tasks = sorted(line.split() for line in out.read_text().splitlines())
    assert tasks == [["0", "fa-node1", NODE_ADDRS["fa-node1"]], ["1", "fa-node2", NODE_ADDRS["fa-node2"]]]


def test_up_is_idempotent_and_down_removes_everything():
    cluster("up")
    before = {node: slurmd_pid(node) for node in NODES}
    again = cluster("up")
    assert "2 nodes up" in again.stdout
    assert {node: slurmd_pid(node) for node in NODES} == before  # nothing restarted

    cluster("down")
    try:
        assert not [line for line in run("ip", "netns", "list").stdout.splitlines() if line.startswith("fa-node")]
        assert run("ip", "link", "show", "fa-slurm0").returncode != 0
        assert "fast_ast local_slurm" not in Path("/etc/hosts").read_text()
        assert not UTS_DIR.exists()
        daemons = [line.split() for line in run("ps", "-eo", "stat=,comm=").stdout.splitlines()]
        assert not [comm for stat, comm in daemons if comm in ("slurmctld", "slurmd") and not stat.startswith("Z")]
    finally:
        cluster("up")  # the other SLURM tests need it
    assert dict(line.split() for line in run("sinfo", "-h", "-N", "-o", "%N %T").stdout.splitlines()) == {n: "idle" for n in NODES}
