"""Key mapping from EfficientAT's released `mn*.pt` files (fschmid56/EfficientAT) to MobileNetV3Audio.

The release is a plain state dict of its `MN` model (torchvision-style modules):
    features.{i}.0 / .1                 stem and final 1x1 convolution: Conv2d, BatchNorm2d
    features.{i}.block.{k}.0 / .1       a block's convolutions in order (expansion if any, depthwise,
                                        projection), each Conv2d + BatchNorm2d
    features.{i}.block.{k}.conc_se_layers.0.fc1 / fc2   squeeze-excitation (Linear layers)
    classifier.{2,5}                    the MLP head's Linears
Ours are timm's blocks (conv_pw/bn1, conv_dw/bn2, se.conv_reduce/conv_expand, conv_pwl/bn3; ConvBnAct
conv/bn1) and `head.*`; the SE Linears [out, in] become 1x1 convolutions [out, in, 1, 1].
"""

from __future__ import annotations

import torch
from timm.models._efficientnet_blocks import ConvBnAct, DepthwiseSeparableConv, InvertedResidual

from fast_ast.backbones.mobilenet import MobileNetV3Audio

SE_NAMES = {"fc1": "conv_reduce", "fc2": "conv_expand"}


def module_names(model: MobileNetV3Audio) -> dict[str, str]:
    """EfficientAT module prefix -> ours, for every convolution, norm, SE layer and head Linear of `model`."""
    names = {f"classifier.{i}.": f"head.{i}." for i, layer in enumerate(model.head) if any(True for _ in layer.parameters())}
    for index, layer in enumerate(model.features):
        theirs, ours = f"features.{index}.", f"features.{index}."
        if isinstance(layer, ConvBnAct):
            names.update({theirs + "0.": ours + "conv.", theirs + "1.": ours + "bn1."})
            continue
        if isinstance(layer, DepthwiseSeparableConv):
            convs = [("conv_dw", "bn1"), ("conv_pw", "bn2")]
        elif isinstance(layer, InvertedResidual):
            convs = [("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")]
        else:
            raise TypeError(f"features.{index} is a {type(layer).__name__}, not a MobileNetV3 block")
        has_se = not isinstance(layer.se, torch.nn.Identity)
        position = 0
        for conv, norm in convs:
            names.update({f"{theirs}block.{position}.0.": f"{ours}{conv}.", f"{theirs}block.{position}.1.": f"{ours}{norm}."})
            position += 1
            if conv == "conv_dw" and has_se:
                for fc, se in SE_NAMES.items():
                    names[f"{theirs}block.{position}.conc_se_layers.0.{fc}."] = f"{ours}se.{se}."
                position += 1
    return names


def efficientat_to_ours(state: dict[str, torch.Tensor], model: MobileNetV3Audio) -> dict[str, torch.Tensor]:
    """Our state dict from an EfficientAT one; keys it does not know are kept unchanged (so the loader lists them)."""
    names = module_names(model)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        ours = names.get(prefix + ".")
        if ours is None:
            out[key] = value
            continue
        if ".se." in ours and leaf == "weight" and value.dim() == 2:
            value = value[:, :, None, None]  # Linear [out, in] -> 1x1 Conv2d [out, in, 1, 1]
        out[ours + leaf] = value
    return out
