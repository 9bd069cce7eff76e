"""What a reduction costs at evaluation, measured: clips/s at several batch sizes, forward FLOPs and
the peak memory of the tensors a forward pass allocates (for eval results and the reduction report).

Peak memory: on CUDA the allocator's peak above what was allocated before the call; on the CPU the
peak of the bytes held by tensors the forward creates (a dispatch mode counting every op's output
storage until its last tensor is freed). Weights and the input are not counted.
"""

from __future__ import annotations

import statistics
import weakref

import torch
from torch.utils._pytree import tree_flatten
from torch.utils._python_dispatch import TorchDispatchMode

from fast_ast.device import device_description
from fast_ast.measure.timing import alternating_times


class PeakTensorBytes(TorchDispatchMode):
    """Within the mode: `peak` = most bytes held at once by storages created by ops run inside it."""

    def __init__(self):
        super().__init__()
        self.holders: dict[int, list[int]] = {}  # storage data_ptr -> [tensors alive, bytes]
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self.track(value)
        return out

    def track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in self.holders:
            self.holders[key] = [0, storage.nbytes()]
            self.current += storage.nbytes()
            self.peak = max(self.peak, self.current)
        self.holders[key][0] += 1
        weakref.finalize(tensor, self.release, key)

    def release(self, key: int) -> None:
        holder = self.holders.get(key)
        if holder is None:
            return
        holder[0] -= 1
        if holder[0] == 0:
            self.current -= holder[1]
            del self.holders[key]


@torch.inference_mode()
def peak_forward_bytes(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Peak bytes of the tensors one `model(example)` allocates (see the module docstring)."""
    if example.device.type == "cuda":
        torch.cuda.synchronize(example.device)
        before = torch.cuda.memory_allocated(example.device)
        torch.cuda.reset_peak_memory_stats(example.device)
        model(example)
        torch.cuda.synchronize(example.device)
        return torch.cuda.max_memory_allocated(example.device) - before
    with PeakTensorBytes() as tracker:
        model(example)
    return tracker.peak


@torch.inference_mode()
def throughput_by_batch(model: torch.nn.Module, clip_samples: int, batch_sizes: list[int], repeats: int, device: torch.device) -> dict[str, dict]:
    """{str(batch size): {clips_per_s, batch_size, repeats, device}}: `model` on random waveforms [B, S],
    every batch size timed once per round in turn (alternating), median over `repeats` rounds."""
    examples = {b: torch.randn(b, clip_samples, device=device) * 0.1 for b in batch_sizes}
    times = alternating_times({b: (lambda x=x: model(x)) for b, x in examples.items()}, device, 1, repeats)
    return {
        str(b): {"clips_per_s": b / statistics.median(times[b]), "batch_size": b, "repeats": repeats, "device": device_description(device)}
        for b in batch_sizes
    }
