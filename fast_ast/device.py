"""The one place a device name from the config (`device: auto | cpu | cuda[:n]`) becomes a torch.device."""

from __future__ import annotations

import platform

import torch


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; any other name as torch.device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device={name!r} is not a device: use auto, cpu or cuda") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name} but CUDA is not available (use device=auto or device=cpu)")
    return device


def device_description(device: torch.device | str) -> str:
    """e.g. 'cuda: NVIDIA H100 80GB HBM3' or 'cpu: x86_64, 2 threads'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} threads".replace("  ", " ")
