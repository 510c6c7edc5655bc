"""Draft decoding (``--decode draft``): a large JPEG is decoded at a DCT scale when the view
resizes it anyway, never below twice the tower's input, never for a native-resolution view,
and the records say so."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import aigi
from aigi.backbones.views import View
from aigi.cli import app
from aigi.data.io import read_image
from aigi.detectors.inference import ViewPreparer


def _photo(path, size=(1600, 1200), fmt="JPEG"):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = np.stack([(x / size[0]) * 255, (y / size[1]) * 255, ((x + y) % 256)], -1)
    noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(path, fmt, quality=90)
    return path


def test_draft_keeps_the_short_side_above_the_floor(tmp_path):
    jpeg = _photo(tmp_path / "big.jpg")
    assert read_image(jpeg).size == (1600, 1200)
    assert read_image(jpeg, min_side=448).size == (800, 600)  # 1/2: 1/4 would give 300 < 448
    assert read_image(jpeg, min_side=160).size == (400, 300)  # 1/4: 1/8 would give 150 < 160
    assert read_image(jpeg, min_side=700).size == (1600, 1200)  # less than 2× smaller: no draft
    png = _photo(tmp_path / "big.png", fmt="PNG")
    assert read_image(png, min_side=448).size == (1600, 1200)  # only JPEG has DCT scales


def test_draft_pixels_stay_close_and_native_views_decode_in_full(tmp_path):
    from aigi.backbones import load_backbone

    spec = load_backbone("random:tiny-clip").preprocess_spec
    files = [str(_photo(tmp_path / "a.jpg"))]
    full = ViewPreparer(View.parse("resize"), spec)(files).pixels
    draft = ViewPreparer(View.parse("resize"), spec, "draft")(files).pixels
    assert full.shape == draft.shape and not np.array_equal(full.numpy(), draft.numpy())
    assert float((full - draft).abs().mean()) < 0.05  # normalised units: a fraction of one grey level
    crop_full = ViewPreparer(View.parse("crop"), spec)(files).pixels
    crop_draft = ViewPreparer(View.parse("crop"), spec, "draft")(files).pixels
    assert np.array_equal(crop_full.numpy(), crop_draft.numpy())  # native pixels are never scaled


@pytest.fixture(scope="module")
def probe(tmp_path_factory, tiny_data):
    return aigi.train({"detector": "univfd", "backbone": "random:tiny-clip",
                       "output": str(tmp_path_factory.mktemp("d") / "run"),
                       "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
                       "train": {"epochs": 5, "batch_size": 16}})


def test_detect_names_the_draft_decode_in_its_records(probe, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        _photo(folder / f"{i}.jpg", size=(1200 + 100 * i, 900))
    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(app, ["detect", str(folder), "-d", str(probe), "-o", str(out), "--decode", "draft"])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3 and all(r["decode"] == "draft" for r in records)
    full = {p.path: p.prob_fake for p in aigi.detect(sorted(map(str, folder.iterdir())), probe)}
    for r in records:
        assert r["prob_fake"] == pytest.approx(full[r["path"]], abs=0.05)
    res = CliRunner().invoke(app, ["detect", str(folder), "-d", str(probe), "--decode", "fast"])
    assert res.exit_code == 2 and "unknown decode 'fast' (valid: full, draft)" in res.output


def test_a_resumed_detect_with_nothing_left_imports_no_torch(tmp_path):
    """Checking the options (precision, runtime, decode) and the results file is light: a rerun
    over a finished folder answers in a fraction of a second."""
    import subprocess
    import sys

    image = _photo(tmp_path / "a.jpg", size=(64, 48))
    out = tmp_path / "r.jsonl"
    out.write_text(json.dumps({"path": str(image), "prob_fake": 0.5, "verdict": "real", "error": None}) + "\n")
    code = ("import sys; from aigi import api; "
            "rest = list(api.detect([sys.argv[1]], out=sys.argv[2], decode='draft', precision='bf16')); "
            "print(len(rest), 'torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code, str(image), str(out)], capture_output=True, text=True)
    assert run.stdout.split() == ["0", "False"], run.stderr
