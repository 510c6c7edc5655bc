"""Blur/JPEG training augmentation and training from pixels."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from aigi.cli import app
from aigi.data.augment import BlurJpegAugment


def _img(seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8))


def test_off_is_identity_and_on_changes_pixels():
    img = _img()
    off = BlurJpegAugment()
    assert not off.active and np.array_equal(np.asarray(off(img, np.random.default_rng(0))), np.asarray(img))
    blur = BlurJpegAugment(blur_prob=1.0, blur_sigma=(2.0, 2.0))
    out = np.asarray(blur(img, np.random.default_rng(0)), dtype=float)
    assert out.std() < np.asarray(img, dtype=float).std() * 0.6  # blur removes most of the noise
    jpeg = BlurJpegAugment(jpeg_prob=1.0, jpeg_quality=(30, 30))
    assert not np.array_equal(np.asarray(jpeg(img, np.random.default_rng(0))), np.asarray(img))


def test_deterministic_per_generator_and_probability_respected():
    aug = BlurJpegAugment(blur_prob=0.5, jpeg_prob=0.5)
    img = _img(1)
    a = np.asarray(aug(img, np.random.default_rng([3, 1, 7])))
    b = np.asarray(aug(img, np.random.default_rng([3, 1, 7])))
    assert np.array_equal(a, b)
    n = 800
    changed = sum(not np.array_equal(np.asarray(aug(img, np.random.default_rng([i, 99]))), np.asarray(img))
                  for i in range(n))
    assert 0.69 < changed / n < 0.81  # 1 - 0.5 * 0.5 = 0.75 of images touched


def test_from_config_round_trip():
    aug = BlurJpegAugment.from_config({"blur_prob": 0.1, "jpeg_prob": 0.1, "jpeg_quality": [30, 100]})
    assert aug.jpeg_quality == (30, 100) and aug.active


@pytest.mark.parametrize("detector,params", [("univfd", {}), ("mole", {"adapted_blocks": 1})])
def test_training_from_pixels_with_augmentation(tiny_data, tmp_path, detector, params):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "detector": detector, "backbone": "random:tiny-clip", "params": params,
        "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
        "augment": {"blur_prob": 0.5, "jpeg_prob": 0.5},
        "train": {"epochs": 4, "lr": 1e-2, "batch_size": 8}, "output": str(tmp_path / "run")}))
    res = CliRunner().invoke(app, ["train", str(recipe)])
    assert res.exit_code == 0, res.output
    log = (tmp_path / "run" / "train.log").read_text()
    assert "training from pixels (augmentation: True)" in log
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert len(history) == 4 and all(h["images"] == 32 for h in history)


def test_degradation_policy_probability_count_and_categories():
    from aigi.data.augment import Augmentations, DegradationPolicy

    img = _img(5)
    never = DegradationPolicy(prob=0.0)
    assert not never.active and never(img, np.random.default_rng(0)) is img
    pol = DegradationPolicy(prob=1.0, max_ops=2, categories=("compression",), severity=(0.5, 1.0))
    assert set(pol.candidates()) == {"jpeg", "jpeg2000", "webp", "double_jpeg", "blocking"}
    out = pol(img, np.random.default_rng(1))
    assert out.size == img.size and not np.array_equal(np.asarray(out), np.asarray(img))
    assert np.array_equal(np.asarray(pol(img, np.random.default_rng(1))), np.asarray(out))  # seeded
    half = DegradationPolicy(prob=0.5, categories=("blur",))
    touched = sum(half(img, np.random.default_rng([i, 7])) is not img for i in range(400))
    assert 0.4 < touched / 400 < 0.6
    with pytest.raises(ValueError, match="selects no operation"):
        DegradationPolicy(prob=1.0, categories=("nonsense",)).candidates()
    aug = Augmentations.from_config({"blur_prob": 0.0, "policy": {"prob": 1.0, "categories": ["geometry"]}})
    assert aug.active and aug.policy.categories == ("geometry",)


def test_training_with_the_degradation_policy(tiny_data, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "detector": "univfd", "backbone": "random:tiny-clip",
        "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
        "augment": {"policy": {"prob": 0.5, "max_ops": 2, "categories": ["noise", "compression"]}},
        "train": {"epochs": 2, "lr": 1e-2, "batch_size": 8}, "output": str(tmp_path / "run")}))
    res = CliRunner().invoke(app, ["train", str(recipe)])
    assert res.exit_code == 0, res.output
    resolved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert resolved["augment"]["policy"]["max_ops"] == 2 and resolved["augment"]["policy"]["severity"] == [0.1, 1.0]
