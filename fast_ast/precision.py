"""Numeric precision of a command's forward passes: one name for training (trainer.precision) and inference.

Names are Lightning's: `32-true` (float32 everywhere) and `bf16-mixed` (torch.autocast to bfloat16 on the CPU
or a GPU; `16-mixed`, float16 autocast, on a GPU only). Training hands the name to Lightning's Trainer; eval,
predict, teacher and bench read their `precision` key and run the model inside `autocast(precision, device)`.

Under bf16-mixed these stay float32, on purpose:
- the fbank and its log (FbankFrontend.features disables autocast): bf16 keeps 8 mantissa bits, so a
  log-mel value near 10 would be off by up to 0.03, ten times the frontend's tolerance against Kaldi, and
  the power spectrum spans more orders of magnitude than the bf16 significand can resolve after summing;
- the softmax statistics of attention: the fused scaled_dot_product_attention kernels keep the running
  max and sum of exp in float32 whatever the input dtype (flash/memory-efficient kernels on GPU, the
  flash kernel on CPU); ToMe's log(size) bias is cast to the query dtype only as an additive term;
- the losses and the scores: autocast runs cross_entropy, BCE, softmax and sigmoid in float32, and the
  commands convert logits with `.float()` before scoring.
"""

from __future__ import annotations

import contextlib
import logging

import torch

log = logging.getLogger(__name__)

AUTOCAST_DTYPES = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def native_cpu_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX); without them oneDNN emulates bf16."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def autocast_dtype(precision: str, device: torch.device | str, key: str = "precision") -> torch.dtype | None:
    """The autocast dtype of `precision` (None: float32); ValueError for an unknown name or float16 on the CPU."""
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(f"{key}={precision!r}: choose one of {sorted(AUTOCAST_DTYPES)}")
    if precision == "16-mixed" and torch.device(device).type == "cpu":
        raise ValueError(f"{key}=16-mixed needs a GPU; on the CPU use {key}=bf16-mixed or 32-true")
    return AUTOCAST_DTYPES[precision]


def check_precision(precision: str, device: torch.device | str, key: str = "precision") -> None:
    """A command's check before it runs: autocast_dtype's errors, and a warning for bf16 on a CPU that emulates it."""
    device = torch.device(device)
    autocast_dtype(precision, device, key)
    if precision == "bf16-mixed" and device.type == "cpu" and not native_cpu_bf16():
        log.warning(
            "%s=bf16-mixed on a CPU without AVX512-BF16/AMX: oneDNN emulates bf16 matmuls, which is far slower than "
            "float32 here (README: Speed levers); use %s=32-true on this machine",
            key, key,
        )


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The context a forward pass runs in for `precision` on `device` (a no-op for 32-true)."""
    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
