"""Degradations: identity at severity 0, shape/dtype kept, seeded, monotone in PSNR."""
from __future__ import annotations

import numpy as np
import pytest

from aigi.data import degradations


def _image(seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:64, 0:80]
    base = np.stack([np.sin(x / 5.0), np.cos(y / 7.0), np.sin((x + y) / 9.0)], -1) * 80 + 128
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def _psnr(a, b):
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.mark.parametrize("name", degradations.names())
def test_severity_zero_is_identity_and_shape_dtype_kept(name):
    img = _image()
    op = degradations.get(name)
    assert op(img, 0.0, np.random.default_rng(0)) is img
    out = op(img, 0.6, np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert op.category and op.severity


@pytest.mark.parametrize("name", degradations.names())
def test_deterministic_for_a_seed(name):
    img = _image(1)
    op = degradations.get(name)
    assert np.array_equal(op(img, 0.5, np.random.default_rng(3)), op(img, 0.5, np.random.default_rng(3)))


@pytest.mark.parametrize("name", degradations.names())
def test_psnr_falls_as_severity_rises(name):
    img = _image(2)
    op = degradations.get(name)
    psnr = [_psnr(img, op(img, s, np.random.default_rng(0))) for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert psnr[0] == float("inf")
    if op.monotone:
        assert all(a > b for a, b in zip(psnr, psnr[1:])), psnr
    else:  # documented exceptions (e.g. a flip) still change the image at every severity > 0
        assert all(p < float("inf") for p in psnr[1:]), psnr


def test_registry_and_parsing():
    assert {"jpeg", "gaussian_blur", "resize"} <= set(degradations.names())
    assert degradations.parse_ops("jpeg:0.5, gaussian_blur") == [("jpeg", 0.5), ("gaussian_blur", None)]
    with pytest.raises(KeyError, match="unknown degradation 'sepia'"):
        degradations.parse_ops("sepia:0.2")
    with pytest.raises(ValueError, match="outside"):
        degradations.get("jpeg")(_image(), 1.5, np.random.default_rng(0))
    assert degradations.get("jpeg").category == "compression"


def test_35_algorithms_in_8_categories():
    cats = {}
    for name in degradations.names():
        cats.setdefault(degradations.get(name).category, []).append(name)
    assert len(degradations.names()) == 35
    assert set(cats) == set(degradations.CATEGORIES)
    assert {"motion_blur", "defocus_blur", "haze"} <= set(cats["blur"])
    assert {"jpeg2000", "webp", "double_jpeg"} <= set(cats["compression"])


def test_codecs_are_real(monkeypatch):
    """JPEG 2000 and WebP go through Pillow's encoders, not imitations."""
    from PIL import Image

    from aigi.data.degradations import compression

    formats = []
    real_save = Image.Image.save

    def spy(self, fp, format=None, **kw):
        formats.append(format)
        return real_save(self, fp, format=format, **kw)

    monkeypatch.setattr(Image.Image, "save", spy)
    img = _image(4)
    for name in ("jpeg", "jpeg2000", "webp"):
        degradations.get(name)(img, 0.5, np.random.default_rng(0))
    assert formats == ["JPEG", "JPEG2000", "WEBP"]
    assert compression.jpeg_quality(0.0) == 95 and compression.jpeg_quality(1.0) == 30


def test_contact_sheet(tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from aigi.cli import app

    src = tmp_path / "in.png"
    Image.fromarray(_image(5)).save(src)
    out = tmp_path / "sheet.png"
    res = CliRunner().invoke(app, ["degrade", str(src), str(out), "--contact-sheet"])
    assert res.exit_code == 0, res.output
    sheet = Image.open(out)
    assert sheet.size == (170 + 128 * 4, 22 + 128 * 35)
