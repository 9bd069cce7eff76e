"""`python -m fast_ast.export ckpt_path=... out=DIR [format=hf|project]`: a checkpoint as an export directory.

format=project (any backbone): DIR/model.safetensors (the model's state dict) and DIR/config.json
({"format": "fast_ast", "model": "AudioClassifier" | "EventClassifier", "hyper_parameters": the model's
plain constructor arguments}); `fast_ast.modules.checkpoint.load_classifier(DIR)` (and eval/predict
ckpt_path=DIR, kd.ckpt_path=DIR) rebuilds it, validated as a .ckpt is. Token Merging settings are kept.

format=hf (the AST backbone only), a Hugging Face AST directory:

DIR/config.json              ASTConfig of the backbone (fast_ast.backbones.hf_keys.hf_config) with the class
                             names as id2label/label2id and problem_type (single- or multi-label)
DIR/model.safetensors        the backbone in ASTForAudioClassification's key layout (hf_keys.ast_to_hf)
DIR/preprocessor_config.json ASTFeatureExtractor with the checkpoint's sample rate, mel bins, max_length =
                             target_length and normalisation mean/std (it computes (x - mean) / (2 std), as
                             FbankFrontend does)

`transformers.ASTForAudioClassification.from_pretrained(DIR)` and `pipeline("audio-classification", model=DIR)`
then give the project's logits and scores; `model.pretrained=DIR` loads it back for training. What the
Hugging Face AST cannot run is not exported, with a warning: Token Merging (the weights are the plain
AST's, run at r = 0) and the frame head of event models (clip logits only).
"""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from safetensors.torch import save_file

from fast_ast.config_keys import check_known_keys
from fast_ast.backbones.hf_keys import ast_to_hf, hf_config
from fast_ast.backbones.registry import backbone_name
from fast_ast.frontend.fbank import FbankFrontend
from fast_ast.inference.model import is_event_model, load_for_inference
from fast_ast.modules.checkpoint import EXPORT_CONFIG, EXPORT_FORMAT, EXPORT_WEIGHTS, check_plain
from fast_ast.modules.classifier import AudioClassifier
from fast_ast.resolvers import CONF_DIR, register_resolvers

log = logging.getLogger(__name__)
register_resolvers()

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PREPROCESSOR_FILE = "preprocessor_config.json"
# ASTFeatureExtractor calls torchaudio's Kaldi fbank with these defaults; FbankFrontend must use the same.
HF_FIXED_FEATURES = {"frame_length_ms": 25.0, "frame_shift_ms": 10.0, "preemphasis": 0.97, "low_freq": 20.0, "high_freq": 0.0}


def feature_extractor_config(features: dict[str, Any], sample_rate: int) -> dict[str, Any]:
    """preprocessor_config.json for ASTFeatureExtractor reproducing FbankFrontend(sample_rate, **features)."""
    defaults = {name: p.default for name, p in inspect.signature(FbankFrontend).parameters.items()}
    settings = {**defaults, **features}
    different = [f"{key}={settings[key]} (Hugging Face: {value})" for key, value in HF_FIXED_FEATURES.items() if settings[key] != value]
    if different:
        raise ValueError(f"ASTFeatureExtractor cannot reproduce these features of the checkpoint: {', '.join(different)}")
    return {
        "feature_extractor_type": "ASTFeatureExtractor",
        "feature_size": 1,
        "sampling_rate": int(sample_rate),
        "num_mel_bins": int(settings["num_mel_bins"]),
        "max_length": int(settings["target_length"]),
        "padding_value": 0.0,
        "do_normalize": True,
        "mean": float(settings["norm_mean"]),
        "std": float(settings["norm_std"]),
        "return_attention_mask": False,
    }


EXPORT_FORMATS = ("hf", "project")


def export_project(model: AudioClassifier, out: str | Path) -> Path:
    """Writes `model` (any backbone) as DIR/model.safetensors + DIR/config.json (see the module docstring)."""
    out = Path(out)
    hparams = {key: value for key, value in dict(model.hparams).items() if key != "kd"}  # a student exports as its classifier
    hparams["pretrained"] = None  # the export holds the trained weights
    check_plain(hparams, "hyper_parameters")
    config = {
        "format": EXPORT_FORMAT,
        "model": "EventClassifier" if is_event_model(model) else "AudioClassifier",
        "backbone": backbone_name(model.backbone),
        "hyper_parameters": hparams,
    }
    weights = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / EXPORT_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    save_file(weights, str(out / EXPORT_WEIGHTS), metadata={"format": "pt"})
    (out / EXPORT_WEIGHTS).chmod(0o644)
    log.info("exported %s (%s backbone) to %s", config["model"], config["backbone"], out)
    return out


def export_hf(model: AudioClassifier, out: str | Path) -> Path:
    """Writes `model` as a Hugging Face ASTForAudioClassification directory `out` (see the module docstring)."""
    out = Path(out)
    if backbone_name(model.backbone) != "ast":
        raise ValueError(
            f"format=hf writes transformers' AST, and this checkpoint's backbone is {backbone_name(model.backbone)!r}: "
            "use format=project (model.safetensors + config.json, rebuilt by load_classifier)"
        )
    if model.backbone.token_reduction is not None:
        log.warning(
            "the checkpoint runs with Token Merging (%s); Hugging Face's AST has no token merging: the export holds "
            "the same weights run as the plain AST (r = 0), whose outputs differ from the ToMe model's",
            model.backbone.token_reduction,
        )
    block_eps, head_eps = model.backbone.v.norm.eps, model.backbone.mlp_head[0].eps
    if block_eps != head_eps:
        log.warning(
            "Hugging Face's AST has one layer_norm_eps for the blocks and the head; this model uses %g in the blocks and %g "
            "in the head (model.backbone.head_norm_eps): transformers runs the export with %g in both, so its logits differ "
            "from this model's by float rounding of the head's LayerNorm (about 1e-5 relative; model.pretrained=<export> "
            "loads back exactly); train with head_norm_eps = norm_eps for an exact transformers export",
            block_eps, head_eps, block_eps,
        )
    if is_event_model(model):
        log.warning("event model: Hugging Face's ASTForAudioClassification has no frame head; only clip logits are exported")
    preprocessor = feature_extractor_config(model.hparams.features, model.hparams.sample_rate)
    config = hf_config(model.backbone, model.class_names)
    config["problem_type"] = "multi_label_classification" if model.multilabel else "single_label_classification"
    weights = ast_to_hf({key: value.detach().cpu().contiguous() for key, value in model.backbone.state_dict().items()})
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    (out / PREPROCESSOR_FILE).write_text(json.dumps(preprocessor, indent=2) + "\n")
    save_file(weights, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    (out / WEIGHTS_FILE).chmod(0o644)  # safetensors creates it owner-only (0600); an export is meant to be shared
    log.info("exported %s to %s (%d classes)", type(model).__name__, out, model.num_classes)
    return out


def export(cfg: DictConfig) -> Path:
    # The trained ToMe setting is kept so that the warning above names it; it does not change the weights.
    if cfg.format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {cfg.format!r}")
    model = load_for_inference(cfg.ckpt_path, None, torch.device("cpu"))
    return export_hf(model, cfg.out) if cfg.format == "hf" else export_project(model, cfg.out)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="export")
def main(cfg: DictConfig) -> None:
    check_known_keys(cfg, "export")
    print(export(cfg))


if __name__ == "__main__":
    main()
