"""What Token Merging merged: a clip's spectrogram with the final token groups drawn over it.

    python -m fast_ast.visualize --synthetic chirp --r 16 --out tome_groups.png
    python -m fast_ast.visualize --audio clip.wav --ckpt outputs/train/.../checkpoints/best.ckpt --r 16
    python -m fast_ast.visualize --synthetic chirp --r 96 model/backbone=base384 data.clip_seconds=10.24 \
        data.features.target_length=1024

Without --ckpt the model is the one conf/train.yaml composes (plus any Hydra overrides given last)
with untrained weights: it then merges patches whose embeddings are alike. Each group of patches that
ended up in one token gets its own colour; tokens still holding a single patch are left uncoloured.
A patch is drawn as the stride-sized cell around its centre (patches overlap when stride < size).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from fast_ast.backbones.ast import NUM_PREFIX_TOKENS
from fast_ast.data.audio_io import fit_length, read_audio
from fast_ast.data.synthetic import synthesize_clip
from fast_ast.data.synthetic_events import EVENT_CLASSES


def build_classifier(ckpt: str | None, overrides: list[str]):
    """The classifier from a checkpoint, or the configured model with fresh weights."""
    if ckpt is not None:
        from fast_ast.modules.checkpoint import load_classifier

        return load_classifier(ckpt), "trained weights"
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from fast_ast.modules.build import build_model
    from fast_ast.resolvers import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name="train", overrides=["tome=none", *overrides])
    torch.manual_seed(cfg.seed)
    return build_model(cfg, instantiate(cfg.data)).eval(), "untrained weights"


def load_clip(audio: str | None, synthetic: str | None, samples: int, rate: int, seed: int) -> tuple[torch.Tensor, str]:
    """[samples] waveform and a description."""
    if synthetic is not None:
        if synthetic not in EVENT_CLASSES:
            raise ValueError(f"--synthetic {synthetic!r} is not a built-in class; choose one of {list(EVENT_CLASSES)}")
        clip, _, _ = synthesize_clip(list(EVENT_CLASSES).index(synthetic), np.random.default_rng(seed), samples, rate)
        return torch.from_numpy(clip), f"synthetic {synthetic}"
    return fit_length(read_audio(audio, rate), samples), Path(audio).name


def patch_groups(source: torch.Tensor, grid: tuple[int, int]) -> np.ndarray:
    """source [N', N] (one clip) -> [f_dim, t_dim] index of the final token holding each patch, -1 for
    patches still alone in their token."""
    patches = source[NUM_PREFIX_TOKENS:, NUM_PREFIX_TOKENS:]  # [N' - P, f_dim * t_dim]
    owner = patches.argmax(dim=0)
    alone = patches.sum(dim=1)[owner] == 1
    owner[alone] = -1
    return owner.reshape(grid).numpy()


def group_colours(groups: np.ndarray) -> np.ndarray:
    """[f_dim, t_dim] group ids -> RGBA [f_dim, t_dim, 4]; distinct hues by golden-ratio stepping."""
    from matplotlib.colors import hsv_to_rgb

    rgba = np.zeros((*groups.shape, 4))
    for rank, group in enumerate(np.unique(groups[groups >= 0])):
        hue = (rank * 0.618033988749895) % 1.0
        saturation, value = (0.9, 1.0) if rank % 2 == 0 else (0.6, 0.85)
        rgba[groups == group, :3] = hsv_to_rgb([hue, saturation, value])
        rgba[groups == group, 3] = 0.55
    return rgba


def draw(fbank: np.ndarray, groups: np.ndarray, backbone, title: str, out: Path) -> None:
    """fbank [T, F]; groups [f_dim, t_dim] -> PNG with the spectrogram above and the groups overlaid below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames, bins = fbank.shape
    f_dim, t_dim = groups.shape
    half = backbone.patch_size / 2
    extent = (
        half - backbone.tstride / 2, half + (t_dim - 0.5) * backbone.tstride,
        half - backbone.fstride / 2, half + (f_dim - 0.5) * backbone.fstride,
    )  # patch (fi, ti) centred at (ti * tstride + size / 2, fi * fstride + size / 2)
    width = min(18.0, max(7.0, frames / 60))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(width, 6.5), sharex=True)
    for axis in (top, bottom):
        axis.imshow(fbank.T, origin="lower", aspect="auto", cmap="gray_r" if axis is bottom else "magma",
                    extent=(0, frames, 0, bins), interpolation="nearest")
        axis.set_ylabel("mel bin")
    bottom.imshow(group_colours(groups), origin="lower", aspect="auto", extent=extent, interpolation="nearest")
    top.set_title(title, fontsize=9)
    bottom.set_xlabel("frame (10 ms)")
    bottom.set_xlim(0, frames)
    bottom.set_ylim(0, bins)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def visualize(args: argparse.Namespace) -> Path:
    model, weights = build_classifier(args.ckpt, args.overrides)
    tome = {**(model.hparams.tome or {}), "r": args.r, "inflection": args.inflection, "trace_source": True}
    model.configure_tome(tome)  # a checkpoint keeps its prop_attn setting
    merging = model.backbone.token_reduction
    if merging is None:
        raise ValueError(f"--r {args.r} merges nothing: use r > 0")
    audio, name = load_clip(args.audio, args.synthetic, model.hparams.clip_samples, model.hparams.sample_rate, args.seed)
    with torch.inference_mode():
        features = model.frontend(audio.unsqueeze(0))  # [1, T, F]
        tokens = model.backbone.forward_features(features)  # every final token, so `source` covers them all
        probabilities = model.scores(model.backbone.head(tokens))[0]
    groups = patch_groups(merging.source[0], model.backbone.grid)
    merged = int((groups >= 0).sum())
    top = int(probabilities.argmax())
    title = (
        f"{name} — ToMe r={args.r} ({weights}): {merging.num_tokens} -> {merging.source.shape[1]} tokens\n"
        f"{len(np.unique(groups[groups >= 0]))} coloured groups hold {merged} of {groups.size} patches"
    )
    if args.ckpt is not None:
        title += f"; prediction: {model.class_names[top]} ({float(probabilities[top]):.2f})"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    draw(model.frontend.features(audio.unsqueeze(0))[0].numpy(), groups, model.backbone, title, out)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fast_ast.visualize", description=__doc__.split("\n\n")[0])
    clip = parser.add_mutually_exclusive_group(required=True)
    clip.add_argument("--audio", help="an audio file (fit to the model's clip length)")
    clip.add_argument("--synthetic", metavar="CLASS", help=f"a built-in corpus clip: one of {', '.join(EVENT_CLASSES)}")
    parser.add_argument("--ckpt", help="a fast_ast checkpoint (default: the configured model, untrained)")
    parser.add_argument("--r", type=int, default=16, help="token pairs merged per layer (tome.r)")
    parser.add_argument("--inflection", type=float, default=0.0, help="ToMe schedule inflection (tome.inflection)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic clip")
    parser.add_argument("--out", default="tome_groups.png", help="PNG to write")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the model when there is no --ckpt")
    args = parser.parse_args(argv)
    if args.ckpt is not None and args.overrides:
        parser.error("Hydra overrides apply to the configured model only, not to --ckpt")
    return args


def main(argv: list[str] | None = None) -> None:
    print(f"wrote {visualize(parse_args(argv))}")


if __name__ == "__main__":
    main()
