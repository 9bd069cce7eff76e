"""backbone=mobilenet: EfficientAT's mn04/mn10/mn40 sizes, the frame output, and loading a state dict written
in EfficientAT's released `.pt` layout (torchvision-style `features.N.block.K.*`, `classifier.*`)."""

from __future__ import annotations

import pytest
import torch
from timm.models._efficientnet_blocks import ConvBnAct, InvertedResidual

from fast_ast.backbones.mobilenet import MobileNetV3Audio
from fast_ast.backbones.weights import load_pretrained
from fast_ast.tome import apply_tome
from tests.fixtures.backbones import one_thread


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    with one_thread():
        yield


@pytest.mark.parametrize(("width", "millions"), [(0.4, 0.983), (1.0, 4.88), (4.0, 68.43)])
def test_parameter_counts_match_efficientats_table(width, millions):
    """EfficientAT README, AudioSet models (527 classes): mn04 0.983M, mn10 4.88M, mn40 68.43M."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = MobileNetV3Audio(num_classes=527, width_mult=width)
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - millions) < 0.005  # the table's last digit


def test_frames_are_the_feature_map_averaged_over_frequency():
    torch.manual_seed(0)
    model = MobileNetV3Audio(num_classes=4, input_fdim=128, input_tdim=100, width_mult=0.4).eval()
    x = torch.randn(2, 100, 128)
    fmap = model.forward_features(x)
    assert fmap.shape == (2, 6 * 64, 4, 4)  # 160 * 0.4 = 64 channels -> x6; 128 / 32 = 4 bins, ceil(100 / 32) = 4 steps
    logits, frames = model.forward_frames(x)
    torch.testing.assert_close(frames, fmap.mean(dim=2).transpose(1, 2))
    torch.testing.assert_close(logits, model(x))
    assert model.num_frames == 4 and model.frame_hop == 32.0 and model.frame_offset == 0.0 and model.frame_dim == 384
    assert model.token_grid is None and not model.supports_token_merging and model.classifier is model.head
    assert model.features[0].bn1.eps == 1e-3 and model.features[0].bn1.momentum == 0.01
    with pytest.raises(ValueError, match=r"tome.r=8: Token Merging does not apply to the MobileNetV3Audio backbone"):
        apply_tome(model, r=8)


def efficientat_layout(model: MobileNetV3Audio) -> dict[str, torch.Tensor]:
    """`model`'s weights under EfficientAT's names: each block's Conv2d + BatchNorm2d pairs numbered in order
    (expansion if any, depthwise, squeeze-excitation as Linears, projection); the head as `classifier`."""
    out = {}

    def put(prefix: str, module: torch.nn.Module) -> None:
        for name, value in module.state_dict().items():
            out[f"{prefix}{name}"] = value.clone()

    for index, layer in enumerate(model.features):
        base = f"features.{index}."
        if isinstance(layer, ConvBnAct):
            put(base + "0.", layer.conv)
            put(base + "1.", layer.bn1)
            continue
        if isinstance(layer, InvertedResidual):
            pairs = [(layer.conv_pw, layer.bn1), (layer.conv_dw, layer.bn2), "se", (layer.conv_pwl, layer.bn3)]
        else:
            pairs = [(layer.conv_dw, layer.bn1), "se", (layer.conv_pw, layer.bn2)]
        k = 0
        for pair in pairs:
            if pair == "se":
                if isinstance(layer.se, torch.nn.Identity):
                    continue
                se = f"{base}block.{k}.conc_se_layers.0."
                out[se + "fc1.weight"] = layer.se.conv_reduce.weight[:, :, 0, 0].clone()
                out[se + "fc1.bias"] = layer.se.conv_reduce.bias.clone()
                out[se + "fc2.weight"] = layer.se.conv_expand.weight[:, :, 0, 0].clone()
                out[se + "fc2.bias"] = layer.se.conv_expand.bias.clone()
            else:
                put(f"{base}block.{k}.0.", pair[0])
                put(f"{base}block.{k}.1.", pair[1])
            k += 1
    put("classifier.", model.head)
    return out


def test_efficientat_release_layout_loads(tmp_path):
    torch.manual_seed(0)
    trained = MobileNetV3Audio(num_classes=6, input_fdim=64, input_tdim=96, width_mult=0.4).eval()
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    state = efficientat_layout(trained)
    # the release's names, e.g. block 4 (expansion, depthwise, SE, projection) and the MLP head's Linears
    for key in ("features.4.block.2.conc_se_layers.0.fc1.weight", "features.4.block.3.1.running_var",
                "features.1.block.1.0.weight", "features.16.1.weight", "classifier.2.weight", "classifier.5.bias"):
        assert key in state, key
    torch.save(state, tmp_path / "mn04_as_mAP_432.pt")
    fresh = MobileNetV3Audio(num_classes=6, input_fdim=64, input_tdim=96, width_mult=0.4).eval()
    load_pretrained(fresh, str(tmp_path / "mn04_as_mAP_432.pt"))
    x = torch.randn(2, 96, 64)
    torch.testing.assert_close(fresh(x), trained(x))

    other = MobileNetV3Audio(num_classes=527, input_fdim=64, input_tdim=96, width_mult=0.4)
    load_pretrained(other, str(tmp_path / "mn04_as_mAP_432.pt"), fmt="efficientat")
    torch.testing.assert_close(other.head[2].weight, trained.head[2].weight)
    assert other.head[5].weight.shape == (527, 512)

    del state["features.4.block.2.conc_se_layers.0.fc1.weight"]
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match=r"1 keys do not fit the backbone:\n  missing features.4.se.conv_reduce.weight"):
        load_pretrained(fresh, str(tmp_path / "broken.pt"))
