"""Config composition: every option of every group composes; bad keys and values fail early, naming the key."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fast_ast.modules.build import build_model
from fast_ast.resolvers import CONF_DIR
from tests.helpers import QUIET_RUN, TINY_MODEL, TINY_TRAIN, compose_config, compose_train

GROUPS = ("data", "model", "model/backbone", "trainer", "tome", "kd", "logger", "callbacks")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes(group, option, tmp_path):
    size = () if group == "model/backbone" else TINY_MODEL  # each backbone family has its own size keys
    cfg = compose_config("train", [*size, *QUIET_RUN, f"paths.output_dir={tmp_path}", f"{group}={option}"])
    selected = OmegaConf.select(cfg, group.replace("/", "."))
    if (group, option) == ("logger", "none"):
        assert selected in (None, {})  # no experiment logger at all
    else:
        assert selected, f"{group}={option} composed to {selected!r}"
        if group in ("logger", "callbacks"):  # each entry is something Lightning is given
            assert all("_target_" in entry for entry in selected.values() if entry is not None)
    # everything that does not need an external path resolves
    if group not in ("data",):
        OmegaConf.to_container(cfg.model, resolve=True)


@pytest.mark.parametrize("preset", options("experiment"))
def test_experiment_presets_compose(preset, tmp_path):
    cfg = compose_config("train", [f"paths.output_dir={tmp_path}", f"+experiment={preset}"])
    assert cfg.model._target_


def test_an_experiment_preset_overrides_the_groups_and_the_command_line_overrides_it(tmp_path):
    preset = compose_config("train", [f"paths.output_dir={tmp_path}", "+experiment=esc50_ast"])
    assert preset.data._target_.endswith("ESC50DataModule") and preset.trainer.max_epochs == 25  # conf/experiment/esc50_ast.yaml
    tuned = compose_config("train", [f"paths.output_dir={tmp_path}", "+experiment=esc50_ast", "trainer.max_epochs=3"])
    assert tuned.trainer.max_epochs == 3


def test_every_group_has_a_default():
    cfg = compose_config("train")
    for group in ("data", "model", "trainer", "tome", "kd", "logger", "callbacks"):
        assert group in cfg, group
    assert cfg.data._target_.endswith("SyntheticDataModule")
    assert cfg.tome.r == 0 and cfg.kd.name == "none"


def test_group_option_and_key_overrides_compose(tmp_path):
    cfg = compose_config("train", ["model=ast", "data=synthetic", "trainer=cpu", "model.optim.lr=0.01", "model/backbone=base384"])
    assert cfg.trainer.accelerator == "cpu"
    assert cfg.model.optim.lr == 0.01
    assert cfg.model.backbone.embed_dim == 768 and cfg.model.backbone.depth == 12


def test_unknown_key_is_rejected_with_its_name(tmp_path):
    with pytest.raises(ConfigCompositionException, match="model.optim.learning_rate"):
        compose_train(tmp_path, "model.optim.learning_rate=0.1")


def test_unknown_group_option_is_rejected(tmp_path):
    with pytest.raises(ConfigCompositionException, match="no_such_corpus"):
        compose_train(tmp_path, "data=no_such_corpus")


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.optim.lr=-0.001", "model.optim.lr"),
        ("model.optim.schedule.decay=1.5", "model.optim.schedule.decay"),
        ("model.finetune.strategy=everything", "model.finetune.strategy"),
        ("data.batch_size=0", "data.batch_size"),
        ("data.augment.mixup=2.0", "augment.mixup"),
        ("data.features.norm_std=0", "features.norm_std"),
        ("+data.features.cpu_chunk_frames=0", "features.cpu_chunk_frames"),
    ],
)
def test_invalid_values_fail_before_training_naming_the_key(override, key, tmp_path):
    cfg = compose_train(tmp_path, override)
    with pytest.raises(Exception) as error:
        datamodule = instantiate(cfg.data)
        build_model(cfg, datamodule)
    assert key in str(error.value)


def test_tiny_defaults_are_what_the_tests_use(tmp_path):
    cfg = compose_train(tmp_path)
    assert f"model.backbone.embed_dim={cfg.model.backbone.embed_dim}" in TINY_TRAIN


def test_token_merge_ratio_beyond_the_token_count_fails_naming_tome_r(tmp_path):
    cfg = compose_train(tmp_path, "model=ast_tome", "tome.r=500")
    with pytest.raises(Exception, match="tome.r"):
        build_model(cfg, instantiate(cfg.data))


@pytest.mark.parametrize("corpus", ["esc50", "speechcommands", "folder", "events"])
def test_missing_data_root_fails_naming_data_root(corpus, tmp_path):
    cfg = compose_config("train", [f"data={corpus}", f"data.root={tmp_path / 'nowhere'}", f"paths.output_dir={tmp_path}"])
    with pytest.raises(Exception, match="data.root"):
        instantiate(cfg.data).setup()
