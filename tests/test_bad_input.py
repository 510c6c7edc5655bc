"""Bad input of every kind gives one line naming the key or value, before any work."""
from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

import aigi
from aigi.cli import app
from aigi.config import ConfigError

runner = CliRunner()


def _recipe(tiny_data, out, **extra):
    return {"detector": "univfd", "backbone": "random:tiny-clip",
            "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
            "train": {"epochs": 2}, "output": str(out), **extra}


def test_data_given_as_a_path_names_the_section(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match=r"data: expected a mapping with keys train, val"):
        aigi.train({**_recipe(tiny_data, tmp_path / "r"), "data": str(tiny_data / "train")})


def test_unknown_detector_fails_before_the_run_folder_exists(tiny_data, tmp_path):
    out = tmp_path / "r"
    with pytest.raises(aigi.errors.AigiError, match="unknown detector 'nosuch'"):
        aigi.train(_recipe(tiny_data, out, detector="nosuch"))
    assert not out.exists()


def test_a_one_class_training_set_is_refused_before_encoding(tiny_data, tmp_path, monkeypatch):
    import shutil

    cache = tmp_path / "cache"
    monkeypatch.setenv("AIGI_FEATURE_CACHE", str(cache))
    shutil.copytree(tiny_data / "train" / "0_real", tmp_path / "reals" / "0_real")
    with pytest.raises(ConfigError, match=r"reals: the training set has only real images"):
        aigi.train(_recipe(tiny_data, tmp_path / "r", data={"train": str(tmp_path / "reals"),
                                                            "val": str(tiny_data / "val")}))
    assert not cache.exists()  # nothing was encoded


@pytest.mark.parametrize("device, message", [("banana", "not a device name"), ("cuda", "no usable CUDA GPU")])
def test_bad_devices_are_one_line(tiny_data, tmp_path, monkeypatch, device, message):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on any machine
    img = next((tiny_data / "val").rglob("*.png"))
    res = runner.invoke(app, ["detect", str(img), "--device", device])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and message in res.output
    with pytest.raises(aigi.errors.InputError, match=message):
        aigi.train(_recipe(tiny_data, tmp_path / "r", device=device))


@pytest.mark.parametrize("args", [["detect", "{img}", "--batch-size", "0"], ["detect", "{img}", "--batch-size", "-3"],
                                  ["eval", "--data", "{data}", "--limit-per-class", "0"]])
def test_sizes_below_one_are_refused(tiny_data, args):
    img = next((tiny_data / "val").rglob("*.png"))
    res = runner.invoke(app, [a.format(img=img, data=tiny_data / "val") for a in args])
    assert res.exit_code == 2 and "Invalid value" in res.output
    with pytest.raises(aigi.errors.InputError, match="at least 1"):
        list(aigi.detect([img], batch_size=0))
    with pytest.raises(aigi.errors.InputError, match="at least 1"):
        aigi.evaluate(None, tiny_data / "val", limit_per_class=0)


def test_resuming_with_a_changed_recipe_is_refused(tiny_data, tmp_path):
    out = tmp_path / "run"
    aigi.train(_recipe(tiny_data, out))
    assert list((out / "checkpoint").glob("step-*"))  # every trainer leaves its checkpoints
    before = (out / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"cannot resume with a changed recipe \(train\.lr: 0\.001 -> 0\.0001\)"):
        aigi.train(_recipe(tiny_data, out), overrides=["train.resume=true", "train.lr=1e-4"])
    assert (out / "config.yaml").read_text() == before  # still says what the checkpoint was trained with
    saved = yaml.safe_load(before)
    assert saved["train"]["lr"] == 0.001


def test_read_errors_carry_a_kind_callers_can_branch_on(tmp_path, monkeypatch):
    """The kind, not words in the message, is what the service maps to 413 / 415 / 422."""
    import numpy as np
    from PIL import Image

    from aigi.data.io import READ_ERROR_KINDS, ImageReadError, read_image

    heic = tmp_path / "a.heic"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    bad = tmp_path / "b.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    big = tmp_path / "c.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    kinds = {}
    for path in (heic, bad, big):
        with pytest.raises(ImageReadError) as info:
            read_image(path)
        kinds[path.name] = info.value.kind
    assert kinds == {"a.heic": "unsupported", "b.png": "unreadable", "c.png": "too_many_pixels"}
    assert set(kinds.values()) <= set(READ_ERROR_KINDS)
    import pickle

    again = pickle.loads(pickle.dumps(ImageReadError("x", "why", "unsupported")))
    assert (again.path, again.cause, again.kind) == ("x", "why", "unsupported")
