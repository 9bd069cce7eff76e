"""`python -m fast_ast.stats data=<corpus> [data.root=...]`: fbank mean/std of a corpus's training split.

The features are FbankFrontend.features — exactly the model's un-normalised log-mel input [B, T, F],
padded/cropped to target_length as in training — of every training clip without training randomness
(the eval crop, no noise mixing). Mean and std are over all values, accumulated in float64. Prints the
two lines to paste under `features:` in conf/data/<corpus>.yaml (conf/stats.yaml holds the settings).
"""

from __future__ import annotations

import math

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from fast_ast.config_keys import check_known_keys
from fast_ast.data.datamodule import AudioDataModule
from fast_ast.device import resolve_device
from fast_ast.frontend.fbank import FbankFrontend
from fast_ast.resolvers import CONF_DIR, register_resolvers

register_resolvers()


@torch.inference_mode()
def fbank_statistics(datamodule: AudioDataModule, batch_size: int, device: torch.device, max_clips: int | None = None) -> dict:
    """{"mean", "std", "clips", "values"} of FbankFrontend.features over the training split (after setup)."""
    frontend = FbankFrontend(sample_rate=datamodule.sample_rate, **datamodule.features).to(device)
    dataset = datamodule.plain_split("train")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=datamodule.num_workers)
    total = total_squares = torch.zeros((), dtype=torch.float64, device=device)
    values = clips = 0
    for batch in loader:
        audio = batch["audio"]
        if max_clips is not None:
            audio = audio[: max_clips - clips]
        features = frontend.features(audio.to(device)).double()
        total = total + features.sum()
        total_squares = total_squares + features.square().sum()
        values += features.numel()
        clips += audio.shape[0]
        if max_clips is not None and clips >= max_clips:
            break
    if clips == 0:
        raise ValueError("the training split has no clips")
    mean = (total / values).item()
    std = math.sqrt(max((total_squares / values).item() - mean**2, 0.0))
    return {"mean": mean, "std": std, "clips": clips, "values": values}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="stats")
def main(cfg: DictConfig) -> dict:
    check_known_keys(cfg, "stats")
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    device = resolve_device(cfg.device)
    stats = fbank_statistics(datamodule, cfg.batch_size, device, cfg.max_clips)
    print(f"# fbank statistics of {stats['clips']} training clips ({stats['values']} values); paste under features:")
    print(f"  norm_mean: {stats['mean']:.6g}")
    print(f"  norm_std: {stats['std']:.6g}")
    return stats


if __name__ == "__main__":
    main()
