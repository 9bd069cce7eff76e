"""Training views: every (clip, epoch) gets a seed that fixes all of its randomness.

view_seed(seed, index, view) -> a 32-bit seed. ViewDataset serves item `index` of a training split as
view `view` of it: the split's own draws (random crop of a long clip, event-window start, background
noise) are made under torch's global generator seeded from the view seed, the mixup partner and weight
from a NumPy generator seeded from it, and the item carries the seed for the model-side draws
(SpecAugment, noise, time shift: fast_ast.frontend.augment). The same (seed, index, view) therefore gives
the same view in training and in `python -m fast_ast.teacher views=E`.

ViewSampler yields (index, epoch) keys, one disjoint shard per DDP rank; Lightning calls its set_epoch. A student
replaying stored teacher views (kd.path with views) sets `replay` to the store's seeds [E, N]: epoch e
then serves view e mod E with the stored seed.

Item added keys: "view_seed" int64, "index" int64, "view" int64; with mixup (augment.mixup > 0) also
"mix_audio" [S], "mix_weight" float32, "mix_id" str, and "target" [C] float mixed with the partner's.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from fast_ast.callbacks.batch_seed import derived_seed


def view_seed(seed: int, index: int, view: int) -> int:
    """The seed of view `view` (the epoch, or epoch mod E when replaying) of clip `index`."""
    return derived_seed(seed, index, view)


def read_seeded(dataset: Dataset, index: int, seed: int) -> dict:
    """dataset[index] with torch's global generator seeded by `seed` (restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return dict(dataset[index])


def soft_target(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A class index or a [C] multi-hot -> [C] float."""
    if target.dim() == 0:
        return torch.nn.functional.one_hot(target, num_classes).float()
    return target.float()


class ViewDataset(Dataset):
    """`dataset` (a training split) served by (index, epoch) keys; see the module docstring."""

    def __init__(self, dataset: Dataset, num_classes: int, seed: int = 0, mixup: float = 0.0, mixup_alpha: float = 10.0):
        self.dataset, self.num_classes, self.seed = dataset, num_classes, seed
        self.mixup, self.mixup_alpha = mixup, mixup_alpha
        self.replay: torch.Tensor | None = None  # [E, N] stored view seeds

    def __len__(self) -> int:
        return len(self.dataset)

    def seed_of(self, index: int, epoch: int) -> tuple[int, int]:
        """(view, view seed) that epoch `epoch` serves for clip `index`."""
        if self.replay is None:
            return epoch, view_seed(self.seed, index, epoch)
        view = epoch % self.replay.shape[0]
        return view, int(self.replay[view, index])

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        view, seed = self.seed_of(int(index), int(epoch))
        item = read_seeded(self.dataset, index, derived_seed(seed, 1))
        item.update(view_seed=torch.tensor(seed, dtype=torch.long), index=torch.tensor(index), view=torch.tensor(view))
        if self.mixup > 0:
            self.add_partner(item, index, seed)
        return item

    def add_partner(self, item: dict, index: int, seed: int) -> None:
        """Mixup as the original AST: with probability `mixup` a uniformly drawn partner clip, weight
        lambda ~ Beta(alpha, alpha); unmixed items get themselves as partner with weight 1."""
        draws = np.random.default_rng([seed, 3])
        mixed = draws.random() < self.mixup
        partner = int(draws.integers(len(self.dataset))) if mixed else index
        weight = float(draws.beta(self.mixup_alpha, self.mixup_alpha)) if mixed else 1.0
        other = read_seeded(self.dataset, partner, derived_seed(seed, 2)) if mixed else item
        item["mix_audio"], item["mix_id"] = other["audio"], other["id"]
        item["mix_weight"] = torch.tensor(weight, dtype=torch.float32)
        for key in ("target", "frame_target"):
            if key in item:
                mine, theirs = (soft_target(x, self.num_classes) if key == "target" else x.float() for x in (item[key], other[key]))
                item[key] = weight * mine + (1 - weight) * theirs
        if "labelled" in item:
            item["labelled"] = torch.tensor(bool(item["labelled"]) and bool(other["labelled"]))


class ViewSampler(DistributedSampler):
    """Yields (index, epoch) keys: this rank's share of the epoch's shuffled indices, or of the indices
    `sampler` draws (a weighted sampler) when one is given.

    It is a DistributedSampler so that Lightning neither wraps nor replaces it under DDP (a wrapper would
    freeze the first epoch's keys and draw each rank's permutation from its own generator): the
    permutation comes from (seed, epoch), the same on every rank, and ranks take disjoint shards
    (padded to equal length, as DistributedSampler does). Lightning calls set_epoch every epoch.
    """

    def __init__(self, dataset: Dataset, sampler: Sampler | None = None, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.sampler = sampler

    @property
    def generator(self):  # fast_ast.callbacks.batch_seed reseeds a weighted sampler's draws through this
        return getattr(self.sampler, "generator", None)

    @generator.setter
    def generator(self, value) -> None:
        if self.sampler is not None:
            self.sampler.generator = value

    def __len__(self) -> int:
        if self.sampler is None:
            return super().__len__()
        return len(range(self.rank, len(self.sampler), self.num_replicas))

    def __iter__(self):
        indices = super().__iter__() if self.sampler is None else list(self.sampler)[self.rank :: self.num_replicas]
        for index in indices:
            yield int(index), self.epoch


class OrderedViews(Sampler):
    """(index, view) for views 0..views-1 of every index in order: what the teacher command scores."""

    def __init__(self, size: int, views: int):
        self.size, self.views = size, views

    def __len__(self) -> int:
        return self.size * self.views

    def __iter__(self):
        for view in range(self.views):
            for index in range(self.size):
                yield index, view
