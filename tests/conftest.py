"""Session-wide fixtures shared by several test modules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.helpers import run_train

# The built-in corpus as the shared classifier sees it: 32 mel bins (a 2 x 9 patch grid), 1 s clips.
CLASSIFIER_DATA = ("data.features.num_mel_bins=32", "data.train_size=400", "data.val_size=100", "data.test_size=8")
# 2 blocks: with 1, Token Merging (between attention and MLP) could not change the cls/dist tokens' output.
CLASSIFIER_MODEL = ("model.backbone.embed_dim=64", "model.backbone.depth=2")
CLASSIFIER_TRAIN = (
    *CLASSIFIER_DATA,
    *CLASSIFIER_MODEL,
    "trainer.max_epochs=20",
    "++trainer.check_val_every_n_epoch=5",
    "model.optim.lr=2e-3",
    "model.optim.schedule.warmup_steps=20",
    "data.augment.freqm=0",
    "data.augment.timem=0",
    "test=false",
)


@dataclass(frozen=True)
class TrainedRun:
    run_dir: Path
    results: dict  # the run's results.json
    data_overrides: tuple[str, ...]  # the data group overrides it was trained with
    model_overrides: tuple[str, ...]  # model group overrides on top of tests.helpers.TINY_MODEL

    @property
    def best(self) -> str:
        return self.results["checkpoints"]["best"]


@pytest.fixture(scope="session")
def trained_classifier(tmp_path_factory) -> TrainedRun:
    """A tiny AST (64 wide, 2 blocks) trained once per session on the built-in corpus (val accuracy 0.82-0.86
    over seeds; harmonic_stack and lowband_noise are recognised reliably). One intra-op thread while
    training: on the shared 2-core test machine two threads contend with the other processes (7x slower)."""
    run_dir = tmp_path_factory.mktemp("trained_classifier")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = run_train(run_dir, *CLASSIFIER_TRAIN)
    finally:
        torch.set_num_threads(threads)
    return TrainedRun(run_dir, results, CLASSIFIER_DATA, CLASSIFIER_MODEL)
