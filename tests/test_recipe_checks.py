"""Recipes are checked whole before any work: every key at every depth, every type,
every choice; a misspelt key names its dotted path and the closest valid key."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import aigi
from aigi.cli import app
from aigi.config import ConfigError
from aigi.config.recipe import load_recipe

runner = CliRunner()


def _base(tiny_data: Path, out: Path, **extra) -> dict:
    return {"detector": "univfd", "backbone": "random:tiny-clip",
            "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
            "train": {"epochs": 2}, "output": str(out), **extra}


@pytest.mark.parametrize("override, message", [
    ("train.learning_rate=1e-4", r"unknown config keys: train\.learning_rate \(did you mean 'lr'\?\); valid in train: epochs, "),
    ("augment.policy.prb=0.5", r"augment\.policy\.prb \(did you mean 'prob'\?\)"),
    ("features.cachedir=/tmp/x", r"features\.cachedir \(did you mean 'cache_dir'\?\)"),
    ("trian.epochs=3", r"unknown config keys: trian \(did you mean 'train'\?\); valid at the top level: detector, "),
    ("train.epochs=five", r"train\.epochs: expected int, got 'five'"),
    ("train.lr=fast", r"train\.lr: expected float, got 'fast'"),
    ("train.precision=fp8", r"train\.precision: must be one of fp32, bf16, fp16, not 'fp8'"),
    ("calibration=plat", r"calibration: .*did you mean 'platt'"),
    ("augment.blur_sigma=[1]", r"augment\.blur_sigma: expected a list of 2"),
    ("data.val_fraction=1.5", r"data\.val_fraction must lie in \(0, 1\)"),
    ("train.batch_size=0", r"train\.batch_size must be ≥ 1"),
])
def test_bad_keys_and_values_are_named(tiny_data, tmp_path, override, message):
    from aigi.config import apply_overrides

    with pytest.raises(ConfigError, match=message):
        load_recipe(apply_overrides(_base(tiny_data, tmp_path / "r"), [override]))


def test_method_params_are_checked_at_any_depth(tiny_data, tmp_path):
    raw = _base(tiny_data, tmp_path / "r", detector="featdistill",
                params={"tune": "lora", "crd": {"queu": 16}})
    with pytest.raises(ConfigError, match=r"params\.crd\.queu \(did you mean 'queue'\?\); valid in params\.crd: dim, "):
        load_recipe(raw)
    raw["params"] = {"lora_rank": "eight"}
    with pytest.raises(ConfigError, match=r"params\.lora_rank: expected int, got 'eight'"):
        load_recipe(raw)
    raw["params"] = {"tuned_blocks": "all", "lora_targets": ["q_proj"], "crd": {"queue": 16}}
    recipe = load_recipe(raw)  # valid values pass, unions (int | str) included
    assert recipe.params["tuned_blocks"] == "all" and recipe.params["crd"].queue == 16


def test_checks_run_before_any_work(tiny_data, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ConfigError, match="train.learning_rate"):
        aigi.train(_base(tiny_data, out, data={"train": str(tmp_path / "no-such-data")}),
                   overrides=["train.learning_rate=1"])
    assert not out.exists()  # failed on the typo, not on the missing data, and wrote nothing


def test_an_ensemble_checks_every_expert_before_training_the_first(tiny_data, tmp_path):
    good = {k: v for k, v in _base(tiny_data, tmp_path / "x").items() if k != "output"}
    bad = {**good, "train": {"epochs": 2, "lr_rate": 0.1}}
    recipe = {"output": str(tmp_path / "ens"), "experts": {"first": good, "second": bad}}
    with pytest.raises(ConfigError, match=r"expert 'second': unknown config keys: train\.lr_rate \(did you mean 'lr'"):
        aigi.train(recipe)
    assert not (tmp_path / "ens" / "experts" / "first").exists()


def test_cli_gives_one_line_for_a_bad_recipe(tiny_data, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(f"detector: univfd\nbackbone: random:tiny-clip\ndata: {{train: {tiny_data / 'train'}}}\n"
                    f"train: {{epoch: 3}}\noutput: {tmp_path / 'out'}\n")
    res = runner.invoke(app, ["train", str(path)])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and "train.epoch (did you mean 'epochs'?)" in res.output


def test_cli_shows_a_traceback_for_our_own_bugs(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug, not bad input")

    monkeypatch.setattr(aigi.api, "describe", broken)
    res = runner.invoke(app, ["describe", str(tmp_path / "x.yaml")])
    assert res.exit_code == 1 and isinstance(res.exception, ZeroDivisionError)  # not swallowed into one line
    assert "error:" not in res.output


def test_debug_flag_shows_the_traceback_of_bad_input(tmp_path):
    res = runner.invoke(app, ["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and res.output.startswith("error: ") and "nothing" in res.output
    res = runner.invoke(app, ["--debug", "export", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, aigi.errors.DetectorNotFound)


def test_one_feature_cache_root_for_training_and_validation(tiny_data, tmp_path, monkeypatch):
    """features.cache_dir holds every feature of the run, validation and keep-best included."""
    default = tmp_path / "default-cache"
    monkeypatch.setenv("AIGI_FEATURE_CACHE", str(default))
    root = tmp_path / "run-cache"
    recipe = {"detector": "featdistill", "backbone": "random:tiny-clip",
              "params": {"tune": "full", "tuned_blocks": 2, "stage1_epochs": 1, "distill": "none"},
              "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
              "train": {"epochs": 1, "batch_size": 8}, "features": {"cache_dir": str(root)},
              "output": str(tmp_path / "run")}
    aigi.train(recipe)
    assert list(root.rglob("index-*.jsonl")) and not default.exists()
    aigi.evaluate(tmp_path / "run", tiny_data / "val", cache_dir=root)
    assert not default.exists()
