"""Recipe handling in the trainer: defaults, validation hold-out, bad configs."""
from __future__ import annotations

import pytest

from aigi.config import ConfigError
from aigi.config.recipe import load_recipe
from aigi.data.datasets import load_dataset
from aigi.training.run import split_validation, train


def test_defaults_fill_and_unknown_keys_rejected():
    cfg = load_recipe({"detector": "univfd", "train": {"lr": 0.5}})
    assert cfg.train.lr == 0.5 and cfg.train.epochs == 50 and cfg.backbone == "embedded"
    with pytest.raises(ConfigError, match="unknown config keys: tarin"):
        load_recipe({"tarin": {}})


def test_split_validation_is_stratified_disjoint_and_seeded(tiny_data):
    ds = load_dataset(tiny_data / "test")  # two subsets × two labels × 8 images
    tr, va = split_validation(ds, 0.25, seed=0)
    assert len(tr) + len(va) == len(ds)
    assert not set(tr.paths) & set(va.paths)
    assert va.counts() == {"gen_a": {"real": 2, "fake": 2}, "gen_b": {"real": 2, "fake": 2}}
    assert split_validation(ds, 0.25, seed=0)[1].paths == va.paths
    assert split_validation(ds, 0.25, seed=1)[1].paths != va.paths


def test_train_without_val_holds_out_part_of_train(tiny_data, tmp_path):
    import json

    run = train({"detector": "univfd", "backbone": "random:tiny-clip",
                 "data": {"train": str(tiny_data / "train"), "val_fraction": 0.25},
                 "train": {"epochs": 5}, "output": str(tmp_path / "r")}, echo=None)
    metrics = json.loads((run / "metrics.json").read_text())["validation"]
    assert metrics["n"] == 8  # 25 % of 16 real + 16 fake
    meta = json.loads((run / "detector" / "config.json").read_text())["metadata"]
    assert meta["validated_on"] == "25% of train"


def test_train_requires_training_data(tmp_path):
    with pytest.raises(ConfigError, match="data.train is required"):
        train({"detector": "univfd", "output": str(tmp_path / "r")}, echo=None)


def test_bad_detector_params_named(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config keys: params\.nonsense"):
        train({"detector": "univfd", "backbone": "random:tiny-clip", "params": {"nonsense": 1},
               "data": {"train": str(tiny_data / "train")}, "output": str(tmp_path / "r")}, echo=None)


def test_the_head_starts_the_same_whatever_loading_the_backbone_drew(tiny_data, tmp_path, monkeypatch):
    """A first load that converts downloaded weights draws from the global generator; a run must
    train the same head whether or not the weights were already converted."""
    import torch
    from safetensors.torch import load_file

    import aigi.backbones as backbones

    recipe = {"detector": "univfd", "backbone": "random:tiny-clip", "data": {"train": str(tiny_data / "train")},
              "train": {"epochs": 2}}
    plain = train({**recipe, "output": str(tmp_path / "plain")}, echo=None)
    build = backbones._random_model

    def drawing_build(*args, **kwargs):
        torch.rand(1000)  # as the one-off conversion of the embedded weights does
        return build(*args, **kwargs)

    monkeypatch.setattr(backbones, "_random_model", drawing_build)
    drawn = train({**recipe, "output": str(tmp_path / "drawn")}, echo=None)
    a, b = (load_file(str(r / "detector" / "model.safetensors")) for r in (plain, drawn))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
