"""Hydra sweeps: one directory per sweep, one per job, failures recorded; the sweep report."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fast_ast.cluster.sweep import job_overrides, swept_keys
from fast_ast.report import pareto_front, report
from fast_ast.resolvers import CONF_DIR, register_resolvers
from fast_ast.results import read_results, write_results
from tests.helpers import TINY_MODEL, run_module

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_JOB = (
    *TINY_MODEL,
    "data.val_size=16",
    "data.test_size=16",
    "data.batch_size=16",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "throughput.repeats=1",
    "throughput.batch_size=2",
)


def sweep_dir_of_a_new_sweep() -> str:
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train", return_hydra_config=True).hydra.sweep.dir


def test_sweeps_started_in_the_same_second_get_different_directories():
    first, second = sweep_dir_of_a_new_sweep(), sweep_dir_of_a_new_sweep()
    pattern = r"multirun_outputs/train_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_([0-9a-f]{6})"
    assert re.fullmatch(pattern, first) and re.fullmatch(pattern, second)
    assert first[-6:] != second[-6:]


def test_a_job_config_keeps_the_sweep_directory_of_its_sweep():
    # Hydra's sweeper resolves the sweep directory (to create it), then composes each job's config
    # anew and copies the sweep config's resolver cache into it.
    register_resolvers()
    sweep = OmegaConf.create({"dir": "multirun_outputs/train_${fast_ast.uid:}"})
    sweep_dir = sweep.dir
    job, other_sweep = (OmegaConf.create({"dir": "multirun_outputs/train_${fast_ast.uid:}"}) for _ in range(2))
    OmegaConf.copy_cache(from_config=sweep, to_config=job)
    assert job.dir == sweep_dir
    assert other_sweep.dir != sweep_dir


def test_multirun_runs_every_job_records_the_failed_one_and_reports_it(tmp_path, monkeypatch):
    # Job 1 fails inside train (no training clips); job 2 still runs. Hydra exits non-zero at the end.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny models: one thread is fastest on a busy machine
    process = run_module("fast_ast.train", "-m", "data.train_size=32,0,48", *TINY_JOB, cwd=tmp_path, check=False)
    output = process.stdout + process.stderr
    assert process.returncode != 0, output[-3000:]
    sweeps = list((tmp_path / "multirun_outputs").iterdir())
    assert len(sweeps) == 1, sweeps  # every job in the same sweep directory
    sweep = sweeps[0]
    assert (sweep / "multirun.yaml").is_file()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2"]

    for num, size in ((0, 32), (2, 48)):
        results = read_results(sweep / str(num))
        assert results["status"] == "completed"
        assert f"data.train_size={size}" in results["overrides"]
        assert results["run_dir"] == str((sweep / str(num)).resolve())
        assert (sweep / str(num) / "checkpoints" / "last.ckpt").is_file()
    failed = read_results(sweep / "1")
    assert failed["status"] == "failed"
    assert "data.train_size must be >= 1, got 0" in failed["error"]
    assert "data.train_size=0" in failed["overrides"]
    assert "ValueError: data.train_size must be >= 1" in (sweep / "1" / "traceback.txt").read_text()

    paths = report(sweep)
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [(r["job"], r["status"], r["data.train_size"]) for r in rows] == [
        ("0", "completed", "32"), ("1", "failed", "0"), ("2", "completed", "48")
    ]
    completed = read_results(sweep / "2")
    assert float(rows[2]["val/acc"]) == pytest.approx(completed["metrics"]["val/acc"])
    assert float(rows[2]["throughput_clips_per_s"]) == pytest.approx(completed["throughput"]["clips_per_s"])
    failures = paths["markdown"].read_text().split("## Failed and unfinished jobs")[1]
    assert "| 1 | failed | data.train_size=0" in failures and "data.train_size must be >= 1" in failures
    assert paths["plot"].read_bytes()[:8] == PNG_MAGIC

    # --remeasure: both completed jobs timed again in this process, the failed one left as it is
    remeasured = list(csv.DictReader(report(sweep, tmp_path / "remeasured", remeasure=True, repeats=2)["csv"].open()))
    assert [r["throughput_device"].endswith("(re-measured)") for r in remeasured] == [True, False, True]
    assert all(float(remeasured[i]["throughput_clips_per_s"]) > 0 for i in (0, 2))
    assert remeasured[1]["throughput_clips_per_s"] == ""


# ---- the report on hand-written sweeps ------------------------------------------------------------

def write_sweep(sweep: Path, arguments: list[str]) -> None:
    """The part of Hydra's multirun.yaml the report reads."""
    sweep.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"hydra": {"sweeper": {"params": None}, "overrides": {"task": arguments}}}), sweep / "multirun.yaml")


def write_job(sweep: Path, num: int, overrides: list[str], acc: float | None = None, speed: float | None = None, error: str | None = None) -> None:
    job = sweep / str(num)
    job.mkdir()
    if error is not None:
        write_results(job, {"task": "train", "status": "failed", "overrides": overrides, "error": error})
        return
    write_results(job, {
        "task": "train", "status": "completed", "run_dir": str(job), "overrides": overrides,
        "monitor": {"name": "val/acc", "best": acc}, "metrics": {"val/acc": acc, "val/loss": 1.0},
        "params": {"total": 1000, "trainable": 1000}, "tokens": {"input": 110, "per_layer": [110]},
        "throughput": {"clips_per_s": speed, "batch_size": 8, "repeats": 5, "device": "cpu: test"},
        "wall_time_s": 1.0,
    })


def test_job_numbers_follow_hydra_order():
    arguments = ["tome.r=0,8,16", "kd.lambda=0.1,1.0", "trainer.max_epochs=3"]
    assert swept_keys(arguments) == ["tome.r", "kd.lambda"]
    jobs = job_overrides(arguments)
    assert len(jobs) == 6
    assert jobs[0] == ["tome.r=0", "kd.lambda=0.1", "trainer.max_epochs=3"]
    assert jobs[3] == ["tome.r=8", "kd.lambda=1.0", "trainer.max_epochs=3"]


def test_pareto_front_by_hand():
    # (throughput, accuracy): (1, .9) and (3, .8) and (4, .5) are not beaten in both; (2, .7) loses to (3, .8).
    points = [(3.0, 0.8), (1.0, 0.9), (2.0, 0.7), (4.0, 0.5), (4.0, 0.4)]
    assert pareto_front(points) == [1, 0, 3]


def test_report_grid_with_failed_unfinished_and_missing_jobs(tmp_path):
    sweep = tmp_path / "train_sweep"
    write_sweep(sweep, ["tome.r=0,8,16", "kd.lambda=0.1,1.0"])
    write_job(sweep, 0, ["tome.r=0", "kd.lambda=0.1"], acc=0.90, speed=100.0)
    write_job(sweep, 1, ["tome.r=0", "kd.lambda=1.0"], acc=0.85, speed=110.0)
    write_job(sweep, 2, ["tome.r=8", "kd.lambda=0.1"], acc=0.88, speed=150.0)
    write_job(sweep, 3, ["tome.r=8", "kd.lambda=1.0"], acc=0.80, speed=140.0)  # beaten by job 2
    write_job(sweep, 4, ["tome.r=16", "kd.lambda=0.1"], error="RuntimeError: out of memory")
    (sweep / "5" / ".hydra").mkdir(parents=True)  # started, never finished (e.g. killed)
    OmegaConf.save(OmegaConf.create(["tome.r=16", "kd.lambda=1.0"]), sweep / "5" / ".hydra" / "overrides.yaml")

    paths = report(sweep, tmp_path / "out")
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [(r["job"], r["tome.r"], r["kd.lambda"], r["status"]) for r in rows] == [
        ("0", "0", "0.1", "completed"), ("1", "0", "1.0", "completed"), ("2", "8", "0.1", "completed"),
        ("3", "8", "1.0", "completed"), ("4", "16", "0.1", "failed"), ("5", "16", "1.0", "unfinished"),
    ]
    assert rows[4]["error"] == "RuntimeError: out of memory"
    markdown = paths["markdown"].read_text()
    assert "6 jobs: 4 completed, 1 failed, 1 unfinished." in markdown
    front = markdown.split("## Pareto front")[1].split("##")[0]
    # front, fastest last: job 0 (0.90 @ 100), job 2 (0.88 @ 150); job 1 and 3 are beaten
    assert front.strip().splitlines()[2:] == [
        "- r=0, lambda=0.1: val/acc 0.9000 at 100.0 clips/s",
        "- r=8, lambda=0.1: val/acc 0.8800 at 150.0 clips/s",
    ]
    failures = markdown.split("## Failed and unfinished jobs")[1]
    assert "| 4 | failed | tome.r=16 kd.lambda=0.1 | RuntimeError: out of memory |" in failures
    assert f"| 5 | unfinished | tome.r=16 kd.lambda=1.0 | {sweep / '5'} |" in failures
    assert paths["plot"].read_bytes()[:8] == PNG_MAGIC


def test_report_lists_jobs_that_never_started(tmp_path):
    sweep = tmp_path / "sweep"
    write_sweep(sweep, ["seed=1,2,3"])
    write_job(sweep, 0, ["seed=1"], acc=0.5, speed=10.0)
    rows = list(csv.DictReader(report(sweep)["csv"].open()))
    assert [(r["job"], r["seed"], r["status"]) for r in rows] == [("0", "1", "completed"), ("1", "2", "not started"), ("2", "3", "not started")]


def test_report_fold_sweep_mean_and_sample_std(tmp_path):
    sweep = tmp_path / "esc50_folds"
    write_sweep(sweep, ["tome.r=0,16", "data.fold=1,2,3"])
    accuracy = {0: [0.80, 0.85, 0.90], 16: [0.70, 0.72, 0.77]}
    speed = {0: [100.0, 110.0, 120.0], 16: [200.0, 200.0, 230.0]}
    num = 0
    for r in (0, 16):
        for fold in range(3):
            write_job(sweep, num, [f"tome.r={r}", f"data.fold={fold + 1}"], acc=accuracy[r][fold], speed=speed[r][fold])
            num += 1
    markdown = report(sweep)["markdown"].read_text()
    folds = markdown.split("## Mean ± std over folds")[1].split("##")[0]
    # r=0: mean 0.85, sample std sqrt((.05² + 0 + .05²) / 2) = 0.05; throughput 110 ± 10.
    # r=16: mean 0.73, std sqrt((.03² + .01² + .04²) / 2) = sqrt(0.0013) = 0.0361; throughput 210 ± sqrt(300) = 17.3.
    assert "| r=0 | 3 | 0.8500 ± 0.0500 | 110.0 ± 10.0 |" in folds
    assert "| r=16 | 3 | 0.7300 ± 0.0361 | 210.0 ± 17.3 |" in folds
    # both settings are on the front: r=0 is more accurate, r=16 faster
    assert "- r=0: val/acc 0.8500 at 110.0 clips/s" in markdown and "- r=16: val/acc 0.7300 at 210.0 clips/s" in markdown


def test_report_refuses_a_directory_that_is_not_a_sweep(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Hydra sweep directory"):
        report(tmp_path)


def test_report_command_prints_the_table(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    write_sweep(sweep, ["seed=1,2"])
    write_job(sweep, 0, ["seed=1"], acc=0.5, speed=10.0)
    write_job(sweep, 1, ["seed=2"], acc=0.6, speed=12.0)
    from fast_ast.report import main

    main([str(sweep), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert "| 1 | 2 | completed | 0.6000 | 12.0 | 1,000 |" in printed
    assert f"wrote {tmp_path / 'out' / 'pareto.png'}" in printed
    assert not (sweep / "summary.md").exists()
