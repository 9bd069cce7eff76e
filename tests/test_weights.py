"""Pretrained-weight loading: every format written in its real layout, then loaded and checked.

Tiny AST: embed_dim 64, depth 2, heads 2, input 100 frames x 128 mel bins (grid 12 x 9 patches).
"""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer

from fast_ast.backbones.ast import AST
from fast_ast.backbones.hf_keys import ast_to_hf, hf_config, hf_to_ast
from fast_ast.backbones.weights import load_pretrained

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TINY = dict(input_fdim=128, embed_dim=64, depth=2, num_heads=2)
HF_SIZES = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256, num_mel_bins=128)


def tiny_ast(num_classes: int = 5, input_tdim: int = 100, seed: int = 0, **overrides) -> AST:
    """Tiny AST with every parameter random (non-zero tokens and positions, so a mix-up shows)."""
    torch.manual_seed(seed)
    model = AST(num_classes, input_tdim=input_tdim, **{**TINY, **overrides}).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)
    return model


def patch_grid_of(pos_embed: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    """[1, 2 + rows*columns, D] -> [1, D, rows, columns]."""
    return pos_embed[:, 2:].transpose(1, 2).reshape(1, pos_embed.shape[-1], rows, columns)


def assert_same_parameters(model: torch.nn.Module, expected: dict[str, torch.Tensor], skip: tuple[str, ...] = ()) -> None:
    for key, value in model.state_dict().items():
        if not key.startswith(skip):
            torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)


# ---- Hugging Face ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    """A random tiny transformers ASTForAudioClassification saved with save_pretrained."""
    from transformers import ASTConfig, ASTForAudioClassification

    torch.manual_seed(1)
    config = ASTConfig(**HF_SIZES, frequency_stride=10, time_stride=10, max_length=100, num_labels=5)
    model = ASTForAudioClassification(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)
    directory = tmp_path_factory.mktemp("hf") / "ast-tiny"
    model.save_pretrained(directory)
    return model, directory


def test_hf_directory_gives_transformers_logits(hf_model, caplog):
    model, directory = hf_model
    ours = AST(5, input_tdim=100, norm_eps=1e-12, head_norm_eps=1e-12, **TINY).eval()  # HF's one layer_norm_eps
    with caplog.at_level(logging.INFO, logger="fast_ast.backbones.weights"):
        load_pretrained(ours, str(directory))
    assert "detected pretrained format 'hf'" in caplog.text
    x = torch.randn(3, 100, 128)
    with torch.no_grad():
        expected = model(input_values=x).logits
        difference = (ours(x) - expected).abs().max().item()
    assert difference <= 1e-4 * max(1.0, expected.abs().max().item())


def test_hf_config_differences_are_listed(hf_model):
    _, directory = hf_model
    wrong = AST(5, input_tdim=100, **{**TINY, "num_heads": 4})  # norm_eps 1e-6 vs the config's 1e-12 too
    with pytest.raises(ValueError) as error:
        load_pretrained(wrong, str(directory), fmt="hf")
    message = str(error.value)
    assert "num_attention_heads: config 2 vs backbone 4" in message
    assert "layer_norm_eps" in message and str(directory / "config.json") in message
    assert "head_norm_eps 1e-05" in message  # transformers' head uses layer_norm_eps: ours must match it too


def test_hf_keys_round_trip_and_export_loads_in_transformers(hf_model, tmp_path):
    from safetensors.torch import load_file
    from transformers import ASTForAudioClassification

    _, directory = hf_model
    on_disk = load_file(str(directory / "model.safetensors"))
    back = ast_to_hf(hf_to_ast(on_disk))
    assert set(back) == set(on_disk)
    for key, value in on_disk.items():
        torch.testing.assert_close(back[key], value, rtol=0, atol=0, msg=key)

    ours = tiny_ast(num_classes=3, norm_eps=1e-12, head_norm_eps=1e-12)
    export = tmp_path / "export"
    export.mkdir()
    (export / "config.json").write_text(json.dumps(hf_config(ours, ["dog", "rain", "siren"])))
    save_file(ast_to_hf(ours.state_dict()), str(export / "model.safetensors"))
    theirs = ASTForAudioClassification.from_pretrained(export).eval()
    assert theirs.config.id2label[2] == "siren"
    x = torch.randn(2, 100, 128)
    with torch.no_grad():
        expected = ours(x)
        assert (expected - theirs(input_values=x).logits).abs().max().item() <= 1e-4 * max(1.0, expected.abs().max().item())


# ---- original AST ------------------------------------------------------------------------------
def test_original_ast_pth_drops_unused_deit_heads(tmp_path, caplog):
    source = tiny_ast()
    state = {"module." + key: value for key, value in source.state_dict().items()}
    state |= {"module.v.head.weight": torch.randn(1000, 64), "module.v.head.bias": torch.randn(1000)}
    state |= {"module.v.head_dist.weight": torch.randn(1000, 64), "module.v.head_dist.bias": torch.randn(1000)}
    path = tmp_path / "audioset_10_10_0.4593.pth"
    torch.save(state, path)
    target = AST(5, input_tdim=100, **TINY).eval()
    with caplog.at_level(logging.INFO, logger="fast_ast.backbones.weights"):
        load_pretrained(target, str(path))
    assert "detected pretrained format 'ast'" in caplog.text
    assert "module.v.head_dist.weight" not in caplog.text and "v.head_dist.weight" in caplog.text
    x = torch.randn(2, 100, 128)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_pos_embed_cropped_and_interpolated_for_other_lengths(tmp_path):
    long_source = tiny_ast(input_tdim=206)  # grid 12 x 20
    path = tmp_path / "long.pth"
    torch.save({"module." + k: v for k, v in long_source.state_dict().items()}, path)
    short = AST(5, input_tdim=100, **TINY)  # grid 12 x 9: centre crop, columns 10 - 4 = 6 .. 14
    load_pretrained(short, str(path), fmt="ast")
    expected = patch_grid_of(long_source.v.pos_embed, 12, 20)[..., 6:15]
    torch.testing.assert_close(patch_grid_of(short.v.pos_embed, 12, 9), expected, rtol=0, atol=0)
    torch.testing.assert_close(short.v.pos_embed[:, :2], long_source.v.pos_embed[:, :2], rtol=0, atol=0)

    short_source = tiny_ast(input_tdim=100)
    path = tmp_path / "short.pth"
    torch.save(short_source.state_dict(), path)
    long = AST(5, input_tdim=206, **TINY)
    load_pretrained(long, str(path), fmt="ast")
    expected = F.interpolate(patch_grid_of(short_source.v.pos_embed, 12, 9), size=(12, 20), mode="bilinear")
    torch.testing.assert_close(patch_grid_of(long.v.pos_embed, 12, 20), expected)


def test_class_count_change_reinitialises_only_the_head_linear(tmp_path, caplog):
    source = tiny_ast(num_classes=5)
    path = tmp_path / "five.pth"
    torch.save(source.state_dict(), path)
    target = tiny_ast(num_classes=7, seed=3)
    before = target.mlp_head[1].weight.detach().clone()
    with caplog.at_level(logging.INFO, logger="fast_ast.backbones.weights"):
        load_pretrained(target, str(path))
    assert "re-initialising mlp_head.1" in caplog.text
    assert_same_parameters(target, source.state_dict(), skip=("mlp_head.1.",))
    assert target.mlp_head[1].weight.shape == (7, 64)
    assert not torch.equal(target.mlp_head[1].weight, before)  # fresh nn.Linear init, not the old values
    assert target.mlp_head[1].weight.abs().max() <= 1 / 64**0.5  # nn.Linear's uniform(+-1/sqrt(fan_in))


def test_mismatch_error_names_every_key_and_the_file(tmp_path):
    source = tiny_ast(depth=1, mlp_ratio=2.0)
    state = source.state_dict() | {"v.extra_token": torch.zeros(1, 1, 64)}
    path = tmp_path / "mismatch.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as error:
        load_pretrained(AST(5, input_tdim=100, **TINY), str(path))
    message = str(error.value)
    assert str(path) in message
    assert "missing v.blocks.1.attn.qkv.weight" in message and "missing v.blocks.1.mlp.fc2.bias" in message
    assert "unexpected v.extra_token" in message
    assert "shape v.blocks.0.mlp.fc1.weight: checkpoint (128, 64) vs backbone (256, 64)" in message


class Pickled:
    """Not a tensor: a weights-only load must refuse it."""


def test_unknown_layout_pickles_and_missing_file_are_rejected(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"encoder.layers.0.weight": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="cannot tell the weights format"):
        load_pretrained(AST(5, input_tdim=100, **TINY), str(path))
    pickled = tmp_path / "object.pth"
    torch.save({"v.cls_token": torch.zeros(1, 1, 64), "extra": Pickled()}, pickled)
    with pytest.raises(ValueError, match="object.pth: cannot be read as a weights-only torch checkpoint"):
        load_pretrained(AST(5, input_tdim=100, **TINY), str(pickled))
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_pretrained(AST(5, input_tdim=100, **TINY), str(tmp_path / "absent.pth"))


# ---- timm ImageNet -----------------------------------------------------------------------------
def test_timm_deit_summed_patch_weights_and_resized_grid(tmp_path, caplog):
    torch.manual_seed(4)
    deit = VisionTransformerDistilled(img_size=224, patch_size=16, embed_dim=64, depth=2, num_heads=2, num_classes=10)
    with torch.no_grad():
        deit.pos_embed.normal_()
    path = tmp_path / "deit_tiny_distilled.pth"
    torch.save({"model": deit.state_dict()}, path)  # DeiT's release wraps the state dict in {'model': ...}
    target = AST(5, input_tdim=206, **TINY)  # grid 12 x 20 from ImageNet's 14 x 14
    with caplog.at_level(logging.INFO, logger="fast_ast.backbones.weights"):
        load_pretrained(target, str(path))
    assert "detected pretrained format 'timm'" in caplog.text and "head_dist.weight" in caplog.text
    torch.testing.assert_close(target.v.patch_embed.proj.weight, deit.patch_embed.proj.weight.sum(1, keepdim=True))
    torch.testing.assert_close(target.v.dist_token, deit.dist_token, rtol=0, atol=0)
    torch.testing.assert_close(target.v.blocks[1].attn.qkv.weight, deit.blocks[1].attn.qkv.weight, rtol=0, atol=0)
    # rows 14 -> 12: centre crop 7 - 6 = 1 .. 12; columns 14 -> 20: bilinear
    expected = F.interpolate(patch_grid_of(deit.pos_embed, 14, 14)[:, :, 1:13], size=(12, 20), mode="bilinear")
    torch.testing.assert_close(patch_grid_of(target.v.pos_embed, 12, 20), expected)


def test_timm_vit_without_dist_token_copies_the_class_token(tmp_path):
    torch.manual_seed(5)
    vit = VisionTransformer(img_size=192, patch_size=16, embed_dim=64, depth=2, num_heads=2, num_classes=10)
    with torch.no_grad():
        vit.pos_embed.normal_()
        vit.cls_token.normal_()
    path = tmp_path / "model.safetensors"
    save_file(vit.state_dict(), str(path))
    target = AST(5, input_tdim=100, **TINY)  # grid 12 x 9 from 12 x 12: time cropped at 6 - 4 = 2
    load_pretrained(target, str(path), fmt="timm")
    torch.testing.assert_close(target.v.dist_token, vit.cls_token, rtol=0, atol=0)
    torch.testing.assert_close(target.v.pos_embed[:, :2], vit.pos_embed[:, :1].expand(1, 2, 64), rtol=0, atol=0)
    torch.testing.assert_close(patch_grid_of(target.v.pos_embed, 12, 9), patch_grid_of(
        torch.cat((vit.pos_embed[:, :1], vit.pos_embed), dim=1), 12, 12)[..., 2:11], rtol=0, atol=0)


# ---- encoder-only and project checkpoints ------------------------------------------------------
def test_encoder_prefix_strips_keys_and_keeps_a_fresh_head(tmp_path, caplog):
    encoder = tiny_ast(input_tdim=206)
    state = {"encoder." + k: v for k, v in encoder.state_dict().items() if not k.startswith("mlp_head.")}
    state |= {"projector.0.weight": torch.randn(32, 64), "decoder.pred.weight": torch.randn(256, 64)}
    path = tmp_path / "ssl_encoder.safetensors"
    save_file(state, str(path), metadata={"grid": "12x20"})
    target = tiny_ast(seed=6)
    head_before = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("mlp_head.")}
    with caplog.at_level(logging.INFO, logger="fast_ast.backbones.weights"):
        load_pretrained(target, str(path), prefix="encoder.")
    assert "detected pretrained format 'encoder'" in caplog.text
    assert "projector.0.weight" in caplog.text and "decoder.pred.weight" in caplog.text
    assert_same_parameters(target, encoder.state_dict() | head_before, skip=("v.pos_embed",))
    expected = patch_grid_of(encoder.v.pos_embed, 12, 20)[..., 6:15]
    torch.testing.assert_close(patch_grid_of(target.v.pos_embed, 12, 9), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="no key starts with prefix 'student.'"):
        load_pretrained(target, str(path), fmt="encoder", prefix="student.")


def test_project_lightning_checkpoint_loads_through_the_classifier(tmp_path):
    import lightning as L

    from fast_ast.modules.classifier import AudioClassifier

    def classifier(target_length: int, pretrained: str | None = None) -> AudioClassifier:
        return AudioClassifier(
            backbone={"name": "ast", "embed_dim": 64, "depth": 2, "num_heads": 2},
            num_classes=3,
            class_names=["a", "b", "c"],
            multilabel=False,
            sample_rate=16000,
            clip_samples=16000,
            features={"num_mel_bins": 128, "target_length": target_length},
            augment={},
            optim={"lr": 1e-3},
            pretrained=pretrained,
        )

    trained = classifier(target_length=206)  # grid 12 x 20
    with torch.no_grad():
        trained.backbone.v.pos_embed.normal_()
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(trained)
    path = tmp_path / "epoch=3-step=40.ckpt"
    trainer.save_checkpoint(path)

    loaded = classifier(target_length=100, pretrained=str(path))  # grid 12 x 9, format detected
    assert_same_parameters(loaded.backbone, trained.backbone.state_dict(), skip=("v.pos_embed",))
    expected = patch_grid_of(trained.backbone.v.pos_embed, 12, 20)[..., 6:15]
    torch.testing.assert_close(patch_grid_of(loaded.backbone.v.pos_embed, 12, 9), expected, rtol=0, atol=0)
