"""hydra/launcher=slurm's signal settings and fast_ast/cluster/requeue.py, without a cluster."""

from __future__ import annotations

import os
import signal

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fast_ast.cluster.requeue import RequeueSignal, requeue_signal
from fast_ast.resolvers import CONF_DIR, register_resolvers


def launcher_config(*overrides: str):
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def test_slurm_launcher_follows_trainer_num_nodes_and_asks_for_sigusr1_before_the_time_limit():
    launcher = launcher_config("hydra/launcher=slurm_local", "trainer.num_nodes=2", "trainer.strategy=ddp",
                               "hydra.launcher.signal_delay_s=300")
    assert launcher["nodes"] == 2 and launcher["tasks_per_node"] == 1
    # submitit's own --signal=USR2@... is replaced, and its handler in the job listens to the same signal.
    assert launcher["additional_parameters"] == {"signal": "USR1@300", "export": "ALL,SUBMITIT_PREEMPT_SIGNAL=USR1"}


def test_requeue_signal_notes_the_signal_and_passes_it_to_the_handler_already_installed(monkeypatch):
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")
    calls = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
    try:
        requeue = RequeueSignal()
        assert not requeue.received
        os.kill(os.getpid(), signal.SIGUSR1)
        assert requeue.received and calls == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_requeue_signal_installs_nothing_outside_a_submitit_job(monkeypatch):
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")
    previous = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    try:
        requeue = RequeueSignal()
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL and not requeue.received
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_requeue_signal_names_a_bad_signal(monkeypatch):
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR9")
    with pytest.raises(ValueError, match="SUBMITIT_PREEMPT_SIGNAL=USR9"):
        requeue_signal()
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL")
    assert requeue_signal() == signal.SIGUSR2  # submitit's default
