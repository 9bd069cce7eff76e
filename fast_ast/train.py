"""`python -m fast_ast.train [overrides]`: train, validate and test a model; write results.json.

The task function `train(cfg)` composes nothing itself: everything comes from conf/ (Hydra).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, read_write

from fast_ast.callbacks.checkpoint_io import AtomicCheckpointIO
from fast_ast.config_checks import check_train_config
from fast_ast.config_keys import check_known_keys
from fast_ast.callbacks.weight_averaging import EpochWeightAveraging
from fast_ast.cluster.requeue import RequeueSignal
from fast_ast.modules.build import build_model
from fast_ast.modules.metrics import check_monitor
from fast_ast.modules.checkpoint import read_checkpoint
from fast_ast.resolvers import CONF_DIR, register_resolvers
from fast_ast.results import model_record, this_job_overrides, write_results
from fast_ast.run_dir import choose_resume, guard_run_dir, write_failure
from fast_ast.summary import print_summary

log = logging.getLogger(__name__)
register_resolvers()


def instantiate_all(group: DictConfig | None) -> list:
    """Instantiates every entry of a callbacks/logger group (entries set to null are skipped)."""
    return [instantiate(entry) for entry in (group or {}).values() if entry is not None and "_target_" in entry]


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """The checkpoint to continue from, checked like every checkpoint read (weights only, plain settings)."""
    if cfg.resume in (None, "none", "null"):
        return None
    if cfg.resume == "auto":  # last.ckpt, else the newest readable checkpoint (fast_ast.run_dir)
        path = choose_resume(run_dir / "checkpoints")
        if path is None:
            return None
    elif not Path(cfg.resume).is_file():
        raise FileNotFoundError(f"resume={cfg.resume}: no such checkpoint")
    else:
        path = str(cfg.resume)
    read_checkpoint(path)
    return path


def point_ddp_ranks_at_this_job() -> None:
    """Lightning starts local DDP ranks 1.. by re-running `sys.argv[1:] hydra.run.dir=<hydra.run.dir>`.
    In a sweep job that would start the whole sweep again: make it this job's overrides and directory."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    hydra_cfg = HydraConfig.get()
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir


def evaluate(trainer: L.Trainer, model, datamodule, run_test: bool) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for results in trainer.validate(model, datamodule=datamodule, verbose=False):
        metrics.update(results)
    if run_test:
        for results in trainer.test(model, datamodule=datamodule, verbose=False):
            metrics.update(results)
    return {k: float(v) for k, v in metrics.items()}


def load_weights(model, checkpoint_path: str) -> None:
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict(state)


def train(cfg: DictConfig) -> dict:
    """Runs one training job and returns its results (also written to <run dir>/results.json)."""
    started = time.time()
    run_dir = Path(cfg.paths.output_dir)
    check_train_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = build_model(cfg, datamodule)
    check_monitor(cfg.data.monitor, model.metric_names("val"))
    loggers = instantiate_all(cfg.get("logger"))
    callbacks = instantiate_all(cfg.get("callbacks"))
    if not loggers:  # Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    point_ddp_ranks_at_this_job()
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        reload_dataloaders_every_n_epochs=1 if datamodule.reloads_each_epoch else 0,
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=resume_checkpoint(cfg, run_dir), weights_only=True)

    checkpointing = trainer.checkpoint_callback
    best = checkpointing.best_model_path if checkpointing is not None else ""
    last = str(run_dir / "checkpoints" / "last.ckpt") if (run_dir / "checkpoints" / "last.ckpt").is_file() else ""
    averaged = None
    averaging = next((c for c in callbacks if isinstance(c, EpochWeightAveraging) and c.average is not None), None)
    if averaging is not None:
        model.load_state_dict(averaging.average)
        averaged = str(run_dir / "checkpoints" / "averaged.ckpt")
        trainer.save_checkpoint(averaged, weights_only=True)
    elif best and not trainer.fast_dev_run:
        load_weights(model, best)
    metrics = evaluate(trainer, model, datamodule, cfg.test)
    if not trainer.is_global_zero:  # DDP: rank 0 measures, records and prints
        return {"status": "completed", "metrics": metrics}

    results = {
        "task": "train",
        "status": "completed",
        "run_dir": str(run_dir.resolve()),
        "overrides": this_job_overrides(),
        "monitor": {
            "name": cfg.data.monitor,
            "best": float(checkpointing.best_model_score) if checkpointing is not None and checkpointing.best_model_score is not None else None,
        },
        "metrics": metrics,
        "checkpoints": {"best": best or None, "last": last or None, "averaged": averaged},
        **model_record(model, cfg.throughput.batch_size, cfg.throughput.repeats),
        "tome": OmegaConf.to_container(cfg.tome, resolve=True),
        "kd": OmegaConf.to_container(cfg.kd, resolve=True),
        "wall_time_s": time.time() - started,
    }
    summarise_in_wandb(loggers, results)
    write_results(run_dir, results)
    print_summary(results)
    return results


def summarise_in_wandb(loggers: list, results: dict) -> None:
    """The W&B run summary gets what its parallel-coordinates and scatter panels compare across runs
    (the final metrics are already there, as the last values logged)."""
    summary = {
        f"best/{results['monitor']['name']}": results["monitor"]["best"],
        "throughput/clips_per_s": results["throughput"]["clips_per_s"],
        "params/total": results["params"]["total"],
        "params/trainable": results["params"]["trainable"],
        "tokens/input": results["tokens"]["input"],
    }
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(summary)


def finish_wandb_run(exit_code: int) -> None:
    """Closes this job's W&B run (WandbLogger leaves it open) so that the next job of a sweep starts its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def record_failure(cfg: DictConfig, error: BaseException, started: float) -> None:
    """results.json with status "failed" and the error, and traceback.txt, in the job's directory (or,
    when that cannot be written, next to it and on stderr: fast_ast.run_dir.write_failure)."""
    run_dir = Path(cfg.paths.output_dir)
    failure = {
        "task": "train",
        "status": "failed",
        "run_dir": str(run_dir.resolve()),
        "overrides": this_job_overrides(),
        "error": f"{type(error).__name__}: {error}",
        "wall_time_s": time.time() - started,
    }
    where = write_failure(run_dir, failure, error)
    log.error("job failed: %s (recorded in %s)", failure["error"], where)


def train_and_record(cfg: DictConfig) -> dict:
    """train(cfg); a failure is written to the job's directory and re-raised. Hydra's sweepers run the
    remaining jobs of the sweep before reporting failures, so one failed job does not stop the others."""
    started = time.time()
    lock = guard_run_dir(Path(cfg.paths.output_dir)) if rank_zero_only.rank == 0 else None  # refused: nothing recorded
    requeue = RequeueSignal()
    try:
        results = train(cfg)
    except Exception as error:
        finish_wandb_run(exit_code=1)
        if requeue.received:  # a rank > 0 of a job SLURM is requeueing: the next run continues it
            raise SystemExit(f"requeued ({requeue.signum.name}) during {type(error).__name__}: {error}") from error
        if rank_zero_only.rank == 0:
            record_failure(cfg, error, started)
        raise
    finally:
        if lock is not None:
            lock.release()
    finish_wandb_run(exit_code=0)
    return results


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    check_known_keys(cfg, "train")
    results = train_and_record(cfg)
    return results["metrics"].get(cfg.data.monitor)


if __name__ == "__main__":
    main()
