"""logger=wandb: offline without an API key; group, name, tags, config and summary as recorded."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from wandb.proto import wandb_internal_pb2

from fast_ast.resolvers import wandb_offline
from fast_ast.results import read_results
from tests.helpers import TINY_MODEL

# wandb's run file (run-<id>.wandb): a 7-byte header, then LevelDB-log records in 32 KiB blocks
# (crc32, length, type: 1 full, 2 first, 3 middle, 4 last), each a wandb_internal_pb2.Record.
WANDB_HEADER = struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
BLOCK = 32768


def wandb_records(path: Path) -> list[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    assert data[:7] == WANDB_HEADER
    records, position, pending = [], 7, b""
    while position + 7 <= len(data):
        if BLOCK - position % BLOCK < 7:  # a block's tail too short for a record header is padding
            position += BLOCK - position % BLOCK
            continue
        checksum, length, kind = struct.unpack("<IHB", data[position : position + 7])
        payload = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0:
            break
        assert checksum == zlib.crc32(payload, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def item_key(item) -> str:
    """A config or summary item's key: `key`, or its `nested_key` parts joined by '/'."""
    return item.key or "/".join(item.nested_key)


def recorded_run(job_dir: Path) -> dict:
    """What the offline run of a job recorded: the run record, the config and the final summary."""
    files = list(job_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    run, config, summary, exit_code = None, {}, {}, None
    for record in wandb_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "config":
            config.update({item_key(item): json.loads(item.value_json) for item in record.config.update})
        elif kind == "summary":
            summary.update({item_key(item): json.loads(item.value_json) for item in record.summary.update})
        elif kind == "exit":
            exit_code = record.exit.exit_code
    return {"run": run, "config": config, "summary": summary, "exit_code": exit_code}


def test_wandb_sweep_runs_offline_with_group_name_tags_config_and_summary(tmp_path):
    home = tmp_path / "home"  # no ~/.netrc
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_API_KEY", "NETRC")}
    env.update(HOME=str(home), HF_HUB_OFFLINE="1", WANDB_SILENT="true", OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-m", "fast_ast.train", "-m", "model.optim.lr=0.001,0.002", "logger=wandb", *TINY_MODEL,
        "data.train_size=32", "data.val_size=16", "data.test_size=16", "data.batch_size=16", "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false", "throughput.repeats=1", "throughput.batch_size=2", "hydra.sweep.dir=sweep_wb",
    ]
    process = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-5000:]

    for num, lr in ((0, "0.001"), (1, "0.002")):
        job = tmp_path / "sweep_wb" / str(num)
        results = read_results(job)
        recorded = recorded_run(job)
        run = recorded["run"]
        assert run.run_group == "sweep_wb"
        assert run.display_name == f"model.optim.lr={lr}"  # the swept override only
        assert run.project == "fast_ast" and run.job_type == "train"
        assert list(run.tags) == ["data=synthetic", "model=ast", "tome.r=0", "kd=none"]
        config = recorded["config"]
        assert config["model"]["optim"]["lr"] == float(lr)
        assert config["model"]["backbone"]["embed_dim"] == 32 and config["trainer"]["max_epochs"] == 1
        assert config["paths"]["output_dir"] == str(job.resolve())
        summary = recorded["summary"]
        assert summary["best/val/acc"] == pytest.approx(results["monitor"]["best"])
        assert summary["throughput/clips_per_s"] == pytest.approx(results["throughput"]["clips_per_s"])
        assert summary["params/total"] == results["params"]["total"]
        assert summary["val/acc"] == pytest.approx(results["metrics"]["val/acc"])
        assert summary["test/loss"] == pytest.approx(results["metrics"]["test/loss"])
        assert recorded["exit_code"] == 0


def test_offline_only_without_an_api_key(tmp_path, monkeypatch):
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert wandb_offline()  # no key anywhere
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "a" * 40 + "\n")
    assert not wandb_offline()  # key in .netrc
    (tmp_path / "netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "b" * 40)
    assert not wandb_offline()
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert not wandb_offline()  # WANDB_MODE decides


def test_run_without_sweep_is_named_by_its_overrides():
    from hydra.types import RunMode

    from fast_ast.resolvers import run_name, sweep_name

    assert run_name(RunMode.RUN, "unused", ["tome.r=8", "seed=1"]) == "tome.r=8,seed=1"
    assert run_name(RunMode.RUN, "unused", []) is None
    assert sweep_name(RunMode.RUN, "multirun_outputs/x") is None
    assert sweep_name(RunMode.MULTIRUN, "multirun_outputs/train_2025_ab12cd") == "train_2025_ab12cd"
