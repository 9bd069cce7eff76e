"""A checkpoint never runs code: crafted `.ckpt` files through every command that reads one.

Each crafted file passes torch.load(weights_only=True) (it holds only tensors and plain containers) but
carries a Hydra `_target_` payload that, were anything read from it instantiated, would create a marker
directory in the test's tmp dir. Every command must refuse it, naming the key, and the marker must
never appear.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from fast_ast.modules.checkpoint import read_checkpoint
from tests.helpers import compose_config


def payload(marker: Path) -> dict:
    return {"_target_": "os.makedirs", "name": str(marker)}


def crafted_backbones(marker: Path) -> dict[str, dict]:
    """Backbone entries that ran the payload through the old `instantiate(hparams['backbone'])`."""
    return {
        "nested": {"name": "ast", "embed_dim": payload(marker)},
        "legacy_nested": {"_target_": "fast_ast.backbones.ast.AST", "embed_dim": payload(marker)},
        "top_level": payload(marker),
    }


@pytest.fixture(scope="module")
def crafted(trained_classifier, tmp_path_factory) -> tuple[dict[str, Path], Path]:
    """{kind: crafted copy of the session's trained best.ckpt}, and the marker that must never exist."""
    directory = tmp_path_factory.mktemp("crafted")
    marker = directory / "PWNED"
    real = torch.load(trained_classifier.best, map_location="cpu", weights_only=True)
    paths = {}
    for kind, backbone in crafted_backbones(marker).items():
        checkpoint = {**real, "hyper_parameters": {**real["hyper_parameters"], "backbone": backbone}}
        paths[kind] = directory / f"{kind}.ckpt"
        torch.save(checkpoint, paths[kind])
    extra = {**real, "hyper_parameters": {**real["hyper_parameters"], "optim": {**real["hyper_parameters"]["optim"], "schedule": payload(marker)}}}
    paths["other_key"] = directory / "other_key.ckpt"
    torch.save(extra, paths["other_key"])
    unknown = {**real, "hyper_parameters": {**real["hyper_parameters"], "callback": "anything"}}
    paths["unknown_key"] = directory / "unknown_key.ckpt"
    torch.save(unknown, paths["unknown_key"])
    return paths, marker


def test_the_payload_is_live(tmp_path):
    # what the test guards against: instantiating the payload does create the marker
    marker = tmp_path / "live"
    instantiate(payload(marker))
    assert marker.is_dir()


def test_crafted_files_load_weights_only_and_are_refused_by_name(crafted):
    paths, marker = crafted
    for kind, path in paths.items():
        torch.load(path, map_location="cpu", weights_only=True)  # nothing pickled: the loader alone lets them in
        with pytest.raises(ValueError, match="unknown_key" if kind == "unknown_key" else "_target_|callback") as error:
            read_checkpoint(path)
        assert str(path) in str(error.value)
    assert "hyper_parameters.backbone" in str(pytest.raises(ValueError, read_checkpoint, paths["nested"]).value)
    assert not marker.exists()


def refused(run, marker: Path) -> str:
    """The message `run` raises (a ValueError, or Hydra's wrapper of one when the model is built from conf/)."""
    with pytest.raises((ValueError, InstantiationException)) as error:
        run()
    assert not marker.exists()
    return str(error.value)


def test_every_command_refuses_crafted_checkpoints(crafted, tmp_path, trained_classifier):
    from fast_ast.eval import evaluate
    from fast_ast.export import export
    from fast_ast.modules.build import build_model
    from fast_ast.predict import predict
    from fast_ast.report import remeasure_throughput
    from fast_ast.teacher import write_teacher_logits
    from fast_ast.visualize import parse_args, visualize

    paths, marker = crafted
    ckpt = str(paths["nested"])
    data = [*trained_classifier.data_overrides, "data.num_workers=0"]
    out = f"paths.output_dir={tmp_path / 'out'}"
    (tmp_path / "clip.wav").write_bytes(b"")  # predict never gets as far as reading it
    commands = {
        "eval": lambda: evaluate(compose_config("eval", [f"ckpt_path={ckpt}", out, *data])),
        "predict": lambda: predict(compose_config("predict", [f"ckpt_path={ckpt}", f"inputs={tmp_path / 'clip.wav'}", out])),
        "export": lambda: export(compose_config("export", [f"ckpt_path={ckpt}", f"out={tmp_path / 'export'}"])),
        "teacher": lambda: write_teacher_logits(compose_config("teacher", [f"ckpt_path={ckpt}", out, *data])),
        "visualize": lambda: visualize(parse_args(["--synthetic", "up_chirp", "--ckpt", ckpt, "--out", str(tmp_path / "v.png")])),
        "kd=teacher": lambda: build_model(*student(tmp_path, data, "kd=teacher", f"kd.ckpt_path={ckpt}")),
        "model.pretrained": lambda: build_model(*student(tmp_path, data, f"model.pretrained={ckpt}", "model.pretrained_format=project")),
        "report --remeasure": lambda: remeasure_throughput([completed_job(tmp_path, ckpt)], "cpu", 1, 1),
    }
    for name, run in commands.items():
        message = refused(run, marker)
        assert "_target_" in message and ckpt in message, f"{name}: {message}"


def test_resume_refuses_a_crafted_checkpoint(crafted, tmp_path):
    from fast_ast.train import train
    from tests.helpers import compose_train

    paths, marker = crafted
    message = refused(lambda: train(compose_train(tmp_path, f"resume={paths['legacy_nested']}")), marker)
    assert "_target_" in message and str(paths["legacy_nested"]) in message


def test_legacy_checkpoints_still_load_by_name(trained_classifier, tmp_path):
    # the first releases stored the AST as {"_target_": "fast_ast.backbones.ast.AST", ...}: read as a name
    from fast_ast.modules.checkpoint import load_classifier

    real = torch.load(trained_classifier.best, map_location="cpu", weights_only=True)
    spec = {k: v for k, v in real["hyper_parameters"]["backbone"].items() if k not in ("name", "head_norm_eps")}
    legacy = {**real, "hyper_parameters": {**real["hyper_parameters"], "backbone": {"_target_": "fast_ast.backbones.ast.AST", **spec}}}
    path = tmp_path / "legacy.ckpt"
    torch.save(legacy, path)
    model = load_classifier(path)
    assert model.hparams["backbone"]["name"] == "ast"
    assert model.backbone.mlp_head[0].eps == spec.get("norm_eps", 1e-6)  # what those models were built with


def student(tmp_path: Path, data: list[str], *overrides: str):
    from hydra.utils import instantiate as build

    cfg = compose_config("train", [*data, f"paths.output_dir={tmp_path / 'student'}", "model.backbone.embed_dim=32", "model.backbone.num_heads=2", "model.backbone.depth=1", *overrides])
    return cfg, build(cfg.data)


def completed_job(tmp_path: Path, ckpt: str):
    from fast_ast.report import Job

    return Job(num=0, directory=tmp_path, status="completed", overrides=[], results={"checkpoints": {"best": ckpt}})
