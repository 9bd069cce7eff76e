"""SSL encoder weights as the SSL fine-tuning project saves them: a model.safetensors of Hugging Face
`ASTModel` keys under `encoder.`, plus projector/decoder keys to drop; loaded with model.pretrained_prefix and
a mean-pooling head, checked against transformers' own ASTModel on the same weights."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file, save_file

from fast_ast.modules.build import build_model
from tests.helpers import TINY_SYNTHETIC, compose_config


@pytest.fixture(scope="module")
def ssl_checkpoint(tmp_path_factory):
    """(transformers ASTModel, path of its SSL-project-style model.safetensors)."""
    from transformers import ASTConfig, ASTModel

    torch.manual_seed(0)
    config = ASTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128, layer_norm_eps=1e-6,
        patch_size=16, frequency_stride=10, time_stride=10, max_length=100, num_mel_bins=128,
    )
    encoder = ASTModel(config).eval()
    root = tmp_path_factory.mktemp("ssl")
    encoder.save_pretrained(root / "hf")  # the on-disk key layout (transformers 5 renames modules in memory only)
    state = {f"encoder.{key}": value for key, value in load_file(str(root / "hf" / "model.safetensors")).items()}
    assert "encoder.embeddings.position_embeddings" in state and "encoder.encoder.layer.0.attention.attention.query.weight" in state
    state["projector.0.weight"] = torch.randn(16, 32)  # the SSL heads the fine-tuning drops
    state["decoder.weight"] = torch.randn(256, 32)
    path = root / "model.safetensors"
    save_file(state, str(path))
    return encoder, path


def build(path, *overrides):
    cfg = compose_config(
        "train",
        [
            *TINY_SYNTHETIC,
            "model.backbone.embed_dim=32", "model.backbone.depth=1", "model.backbone.num_heads=2",
            "model.backbone.fstride=10", "model.backbone.tstride=10",
            f"model.pretrained={path}", "model.pretrained_prefix=encoder.", *overrides,
        ],
    )
    return build_model(cfg, instantiate(cfg.data)).eval()


def test_ssl_encoder_loads_under_its_prefix(ssl_checkpoint, caplog):
    encoder, path = ssl_checkpoint
    with caplog.at_level("INFO"):
        model = build(path, "model.backbone.pooling=mean")
    assert "ignoring 2 keys outside prefix 'encoder.': decoder.weight, projector.0.weight" in caplog.text
    x = torch.randn(2, 100, 128)
    with torch.no_grad():
        ours = model.backbone.forward_features(x)  # [B, 2 + 12 x 9, 32] after the final LayerNorm
        theirs = encoder(input_values=x).last_hidden_state
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    # the mean-pooling head: LayerNorm + Linear on the mean of every final token, freshly initialised
    torch.testing.assert_close(model.backbone(x), model.backbone.mlp_head(theirs.mean(dim=1)), rtol=1e-4, atol=1e-5)


def test_a_wrong_prefix_names_it(ssl_checkpoint):
    _, path = ssl_checkpoint
    with pytest.raises(ValueError, match=r"no key starts with prefix 'student\.'"):
        build(path, "model.pretrained_prefix=student.")
