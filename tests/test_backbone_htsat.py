"""backbone=htsat: HTS-AT's folding by hand, its token-semantic frame output, the paper's size, and loading
a checkpoint written in the release's layout (a Lightning .ckpt of `sed_model.*` keys)."""

from __future__ import annotations

import pytest
import torch

from fast_ast.backbones.htsat import HTSAT, fold_spectrogram, unfold_rows
from fast_ast.backbones.weights import load_pretrained
from fast_ast.tome import apply_tome
from tests.fixtures.backbones import one_thread

TINY = dict(input_fdim=32, input_tdim=100, spec_size=64, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4, drop_path_rate=0.0)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    with one_thread():
        yield


def test_folding_by_hand():
    """1024 frames x 64 bins -> 256 x 256: row = chunk * 64 + bin, column = frame within the chunk of 256."""
    x = torch.arange(1024 * 64, dtype=torch.float64).reshape(1, 1024, 64)  # x[t, f] = 64 t + f
    image = fold_spectrogram(x, 256)
    assert image.shape == (1, 1, 256, 256)
    for row, column in ((0, 0), (5, 7), (64 * 2 + 5, 7), (255, 255), (64 * 3, 100)):
        chunk, mel = divmod(row, 64)
        assert image[0, 0, row, column] == 64 * (chunk * 256 + column) + mel
    # the token-semantic module's unfolding puts the chunks back side by side in time
    torch.testing.assert_close(unfold_rows(image, 4)[0, 0], x[0].T)


def test_short_inputs_are_stretched_to_the_image_as_htsat_does():
    x = torch.linspace(0, 1, 100, dtype=torch.float64).reshape(1, 100, 1).expand(1, 100, 32)
    image = fold_spectrogram(x, 64)  # 2 chunks of 64 frames: 100 frames stretched to 128
    assert image.shape == (1, 1, 64, 64)
    torch.testing.assert_close(image[0, 0, 0, 0], torch.tensor(0.0, dtype=torch.float64))
    torch.testing.assert_close(image[0, 0, 32, 63], torch.tensor(1.0, dtype=torch.float64))  # last frame, second chunk


def test_frame_logits_and_clip_pooling():
    torch.manual_seed(0)
    model = HTSAT(num_classes=3, **TINY).eval()
    x = torch.randn(2, 100, 32)
    logits, frames = model.forward_frames(x)
    # 64 / 4 = 16 patches per side, one merge -> 8 x 8 tokens; 8 rows = 2 time chunks of 4 rows -> 16 frames
    assert model.frames_are_logits and frames.shape == (2, 16, 3) and model.num_frames == 16
    torch.testing.assert_close(logits, frames.mean(dim=1))
    torch.testing.assert_close(model(x), logits)
    assert model.frame_hop == 100 / 16 and model.frame_offset == (100 / 16 - 1) / 2
    assert model.classifier is model.clip_pooling and model.token_grid == (16, 16)
    assert not model.supports_token_merging
    with pytest.raises(ValueError, match=r"tome.r=4: Token Merging does not apply to the HTSAT backbone"):
        apply_tome(model, r=4)
    assert apply_tome(model, r=0) is None


def test_features_that_do_not_fold_name_the_key():
    with pytest.raises(ValueError, match=r"data.features.num_mel_bins=128 must divide model.backbone.spec_size=64"):
        HTSAT(3, **{**TINY, "input_fdim": 128})
    with pytest.raises(ValueError, match=r"data.features.target_length=200 is longer than the 2 x 64 = 128 frames"):
        HTSAT(3, **{**TINY, "input_tdim": 200})
    with pytest.raises(ValueError, match=r"model.backbone.window_size=3 must divide"):
        HTSAT(3, **{**TINY, "window_size": 3})


def test_paper_size():
    """The paper's HTS-AT at 527 classes: ~30M parameters (the release README's "30 million"), 32 frames per 10.24 s."""
    model = HTSAT(num_classes=527)
    count = sum(p.numel() for p in model.parameters())
    tscam = 768 * 527 * 2 * 3 + 527  # (256 / 4 / 8 / 4 = 2) x 3 convolution from 768 channels
    assert model.tscam_conv.weight.numel() + model.tscam_conv.bias.numel() == tscam
    assert 29.5e6 < count < 30.5e6, count
    assert model.num_frames == 32 and model.frame_hop == 32.0
    assert [len(stage.blocks) for stage in model.layers] == [2, 2, 6, 2] and model.num_features == 768


def released_layout(model: HTSAT) -> dict[str, torch.Tensor]:
    """`model`'s weights as HTS-AT's SEDWrapper saves them: `sed_model.` keys, patch merging at the end of the
    previous Swin layer, plus the keys the release has and we do not (frontend, unused head, buffers)."""
    state = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        if parts[0] == "layers" and parts[2] == "downsample":
            parts[1] = str(int(parts[1]) - 1)
        state["sed_model." + ".".join(parts)] = value.clone()
    state["sed_model.spectrogram_extractor.stft.conv_real.weight"] = torch.randn(513, 1, 1024)
    state["sed_model.spectrogram_extractor.stft.conv_imag.weight"] = torch.randn(513, 1, 1024)
    state["sed_model.logmel_extractor.melW"] = torch.randn(513, 64)
    state["sed_model.head.weight"], state["sed_model.head.bias"] = torch.randn(3, 3), torch.randn(3)
    for i, stage in enumerate(model.layers):
        for j, _ in enumerate(stage.blocks):
            state[f"sed_model.layers.{i}.blocks.{j}.attn.relative_position_index"] = torch.zeros(16, 16, dtype=torch.long)
        state[f"sed_model.layers.{i}.blocks.1.attn_mask"] = torch.zeros(4, 16, 16)
    return state


def test_release_checkpoint_layout_loads(tmp_path):
    torch.manual_seed(0)
    trained = HTSAT(num_classes=3, **{**TINY, "depths": [2, 2], "num_heads": [2, 4]}).eval()
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    path = tmp_path / "HTSAT_AudioSet_Saved_1.ckpt"
    torch.save({"epoch": 3, "global_step": 100, "state_dict": released_layout(trained)}, path)
    assert "sed_model.layers.0.downsample.reduction.weight" in released_layout(trained)

    fresh = HTSAT(num_classes=3, **{**TINY, "depths": [2, 2], "num_heads": [2, 4]}).eval()
    load_pretrained(fresh, str(path))  # auto: the family's own format
    x = torch.randn(2, 100, 32)
    torch.testing.assert_close(fresh(x), trained(x))

    other = HTSAT(num_classes=5, **{**TINY, "depths": [2, 2], "num_heads": [2, 4]})
    load_pretrained(other, str(path), fmt="htsat")  # another class count: only the token-semantic conv is fresh
    torch.testing.assert_close(other.norm.weight, trained.norm.weight)
    assert other.tscam_conv.weight.shape == (5, 32, 4, 3)
    with pytest.raises(ValueError, match=r"does not apply to the HTSAT backbone"):
        load_pretrained(other, str(path), fmt="timm")
