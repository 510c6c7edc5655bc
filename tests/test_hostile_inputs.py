"""Hostile input: extreme aspect ratios, images that cannot be prepared, and what
happens to the rest of their batch."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import aigi
from aigi.detectors import Detector

EXTREME = [(1, 10000), (10000, 1), (2, 30000), (30000, 3)]  # (width, height)

_MEMORY_PROBE = """
import json, resource, sys
import numpy as np
from PIL import Image
from aigi.backbones.preprocess import PreprocessSpec, preprocess_one

specs = [PreprocessSpec(), PreprocessSpec(384, None, "exact")]  # CLIP (crop) and SigLIP (square)
sizes = json.loads(sys.argv[1])
images = [Image.fromarray(np.full((h, w, 3), 128, np.uint8)) for w, h in sizes]
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB
before, shapes = peak(), []
for image in images:
    for spec in specs:
        shapes.append(list(preprocess_one(image, spec).shape))
print(json.dumps({"growth_mib": peak() - before, "shapes": shapes}))
"""


def test_extreme_aspect_ratios_cost_memory_bounded_by_the_output():
    """A 1 × 10,000 strip used to become a 224 × 2,240,000 intermediate (5 GB); now the
    peak memory of preparing every one of these is a few MiB beyond the process's own."""
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, json.dumps(EXTREME)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["shapes"] == [[3, 224, 224], [3, 384, 384]] * len(EXTREME)
    assert result["growth_mib"] < 64, result


class _Flat(Detector):
    """A detector on a tiny random backbone: scores are not the point here."""

    name = "test-flat"

    def __init__(self, backbone: str = "random:tiny-clip", threshold: float = 0.5) -> None:
        super().__init__(backbone, threshold)
        self.head = __import__("torch").nn.Linear(16, 1)

    def head_from_features(self, features):
        return self.head(features).squeeze(-1)


def test_every_extreme_image_gets_a_score(tmp_path):
    paths = []
    for w, h in EXTREME:
        path = tmp_path / f"strip_{w}x{h}.png"
        Image.fromarray(np.random.default_rng(w * h).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    preds = _Flat().predict(paths, batch_size=8)
    assert [p.error for p in preds] == [None] * len(paths)
    assert all(0.0 <= p.prob_fake <= 1.0 for p in preds)


def test_an_image_that_cannot_be_prepared_does_not_take_its_batch(tmp_path, monkeypatch):
    import importlib

    prep = importlib.import_module("aigi.backbones.preprocess")  # the module, not the function

    good = tmp_path / "good.png"
    bad = tmp_path / "bad.png"
    Image.fromarray(np.full((40, 40, 3), 30, np.uint8)).save(good)
    Image.fromarray(np.full((41, 40, 3), 30, np.uint8)).save(bad)
    real = prep._resize

    def resize(image, spec):
        if image.size == (40, 41):
            raise MemoryError("cannot allocate")
        return real(image, spec)

    monkeypatch.setattr(prep, "_resize", resize)
    preds = _Flat().predict([good, bad, good], batch_size=3)
    assert [p.error is None for p in preds] == [True, False, True]
    assert "out of memory" in preds[1].error and preds[0].prob_fake == preds[2].prob_fake
    res = aigi.api.find_images([tmp_path])[0]
    assert sorted(res) == sorted([good, bad])


def test_a_batch_that_runs_out_of_memory_is_scored_image_by_image(tmp_path, monkeypatch):
    det = _Flat()
    paths = []
    for i in range(3):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((40, 40, 3), 40 * i, np.uint8)).save(path)
        paths.append(path)
    alone = [p.prob_fake for p in (det.predict([x])[0] for x in paths)]
    forward = type(det).forward

    def forward_small_batches_only(self, pixels):
        if len(pixels) > 1:
            raise MemoryError("batch too large")
        return forward(self, pixels)

    monkeypatch.setattr(type(det), "forward", forward_small_batches_only)
    preds = det.predict(paths, batch_size=3)
    assert [p.prob_fake for p in preds] == pytest.approx(alone)
