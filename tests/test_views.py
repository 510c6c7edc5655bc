"""Native-resolution views and fixed training copies: what the tower sees, the same through the
feature cache and through ``detect``, saved with the detector, and cached per crop and copy."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import aigi
from aigi.backbones.views import View
from aigi.data.augment import FixedCopies
from aigi.errors import ConfigError
from aigi.features import FeatureCache

from .conftest import make_image


def _grid(w: int, h: int) -> Image.Image:
    """Every pixel different: a crop's place can be read back from its values."""
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    return Image.fromarray(np.stack([x % 256, y % 256, (x // 256) * 16 + y // 256], -1).astype(np.uint8))


@pytest.mark.parametrize("text, kind, crops", [("resize", "resize", 1), ("crop", "crop", 1),
                                               ("multicrop:4", "multicrop", 4), (None, "resize", 1)])
def test_views_parse(text, kind, crops):
    view = View.parse(text)
    assert (view.kind, view.crops) == (kind, crops)
    assert View.parse(str(view)) == view


@pytest.mark.parametrize("text, why", [("multi", "valid: resize, crop, multicrop:K"), ("crop:2", "valid:"),
                                       ("multicrop:1", "K must lie in 2"), ("multicrop:10", "K must lie in 2")])
def test_bad_views_are_refused_with_the_valid_ones(text, why):
    with pytest.raises(ConfigError, match=why):
        View.parse(text)
    with pytest.raises(ConfigError, match=why):
        aigi.train({"view": text, "data": {"train": "nowhere"}}, echo=None)  # refused before any work


def test_crops_are_native_pixels_at_the_grid_places():
    image = _grid(300, 200)
    arr = np.asarray(image)
    crops = View.parse("multicrop:5").apply(image, 64)
    assert all(c.size == (64, 64) for c in crops)
    centre, tl, tr, bl, br = (np.asarray(c) for c in crops)
    assert np.array_equal(centre, arr[68:132, 118:182])  # no resampling: the file's own pixels
    assert np.array_equal(tl, arr[:64, :64]) and np.array_equal(br, arr[-64:, -64:])
    assert np.array_equal(tr, arr[:64, -64:]) and np.array_equal(bl, arr[-64:, :64])


def test_an_image_smaller_than_the_crop_keeps_what_it_has():
    small = _grid(40, 20)
    for view in ("crop", "multicrop:3"):
        for crop in View.parse(view).apply(small, 64):
            assert np.array_equal(np.asarray(crop), np.asarray(small))
    assert View.parse("resize").apply(small, 64)[0] is small


def test_random_crops_stay_inside_and_are_seeded():
    image, view = _grid(120, 90), View.parse("crop")
    a = view.random_crop(image, 32, np.random.default_rng(3))
    b = view.random_crop(image, 32, np.random.default_rng(3))
    assert a.size == (32, 32) and np.array_equal(np.asarray(a), np.asarray(b))


def test_fixed_copies_are_deterministic_rescaled_jpegs():
    copies = FixedCopies(n=3, jpeg_quality=(60, 90), scale=(0.5, 0.8), min_side=16)
    image = make_image(1, np.random.default_rng(0), size=(200, 240))
    sha = "ab" * 32
    first = [np.asarray(t(image, sha)) for t, _ in copies.transforms()]
    again = [np.asarray(t(image, sha)) for t, _ in copies.transforms()]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], first[1])
    for arr in first:
        assert 0.5 * 200 - 1 <= arr.shape[0] <= 0.8 * 200 + 1 and arr.shape[1] / arr.shape[0] == pytest.approx(1.2, rel=0.02)
    ids = [i for _, i in copies.transforms()]
    assert len(set(ids)) == 3 and all("q60-90" in i and "s0.5-0.8" in i for i in ids)
    with pytest.raises(ConfigError):
        FixedCopies(n=1, jpeg_quality=(90, 60))


def test_thumbnail_copies_are_small_and_leave_the_other_copies_as_they_were():
    image = make_image(1, np.random.default_rng(0), size=(300, 400))
    shas = [f"{i:02x}" * 32 for i in range(40)]
    plain = FixedCopies(n=1)
    some = FixedCopies(n=1, thumbnails=0.5, thumbnail_side=(32, 48))
    sides = [min(some.copy(image, sha, 0).size) for sha in shas]
    assert all(32 <= s <= 48 or 224 <= s <= 300 for s in sides) and 5 < sum(s <= 48 for s in sides) < 35
    for sha, side in zip(shas, sides):  # a copy that is not a thumbnail has the pixels it had without the option
        if side > 48:
            assert np.array_equal(np.asarray(some.copy(image, sha, 0)), np.asarray(plain.copy(image, sha, 0)))
    assert all(min(FixedCopies(n=1, thumbnails=1.0).copy(image, sha, 0).size) <= 96 for sha in shas[:5])
    (_, plain_id), (_, thumb_id) = plain.transforms()[0], some.transforms()[0]
    assert plain_id != thumb_id and ":t0.5@32-48" in thumb_id  # cached apart
    with pytest.raises(ConfigError, match="thumbnail"):
        FixedCopies(n=1, thumbnails=1.5)


@pytest.fixture(scope="module")
def photo_like(tmp_path_factory) -> Path:
    """Images larger than the tiny tower's 32 px input, so that crops differ from the resize."""
    root = tmp_path_factory.mktemp("photo-like")
    rng = np.random.default_rng(5)
    for split, n in (("train", 12), ("val", 6), ("test", 6)):
        for label, folder in ((0, "0_real"), (1, "1_fake")):
            (root / split / folder).mkdir(parents=True)
            for i in range(n):
                make_image(label, rng, size=(int(rng.integers(70, 110)), int(rng.integers(70, 130)))).save(
                    root / split / folder / f"{i}.png")
    return root


def _train(tmp_path: Path, data: Path, view: str, copies: dict | None = None) -> Path:
    recipe = {"detector": "univfd", "backbone": "random:tiny-clip", "view": view,
              "data": {"train": str(data / "train"), "val": str(data / "val")},
              "train": {"epochs": 30, "lr": 0.01, "batch_size": 16},
              "output": str(tmp_path / f"run-{view.replace(':', '-')}")}
    if copies:
        recipe["augment"] = {"copies": copies}
    return aigi.train(recipe, echo=None)


def test_a_multicrop_detector_scores_the_mean_logit_of_its_crops_on_every_path(photo_like, tmp_path):
    run = _train(tmp_path, photo_like, "multicrop:3")
    assert json.loads((run / "detector" / "config.json").read_text())["view"] == "multicrop:3"
    det = aigi.load_detector(run)
    assert str(det.view) == "multicrop:3"
    paths = sorted((photo_like / "test").rglob("*.png"))
    # by hand: the three crops through the tower, the mean logit, the calibration
    by_hand = []
    with torch.no_grad():
        for p in paths:
            crops = det.view.apply(Image.open(p).convert("RGB"), 32)
            pixels, _, _ = det.backbone.prepare(crops)
            by_hand.append(float(det.to_probability(det(pixels).float().mean().view(1))[0]))
    detected = [r.prob_fake for r in aigi.detect([str(p) for p in paths], run)]
    assert detected == pytest.approx(by_hand, abs=1e-5)
    # the feature cache (eval) gives the same scores as detect
    result = aigi.evaluate(run, photo_like / "test")
    by_path = {r["path"]: r["prob_fake"] for r in result.predictions}
    assert [by_path[str(p)] for p in paths] == pytest.approx(detected, abs=1e-5)
    # and a plain resize detector's scores differ from it: the crops are really used
    plain = aigi.load_detector(_train(tmp_path, photo_like, "resize"))
    assert str(plain.view) == "resize"
    assert [r.prob_fake for r in plain.predict([str(p) for p in paths])] != pytest.approx(detected, abs=1e-3)


def test_copies_are_cached_apart_and_train_on_their_own(photo_like, tmp_path):
    run = _train(tmp_path, photo_like, "crop", {"n": 2, "keep_original": False})
    log = (run / "train.log").read_text()
    assert "train copy 0: 24 images, 24 encoded now, 0 from cache" in log
    assert "train copy 1: 24 images, 24 encoded now, 0 from cache" in log
    assert "\ntrain:" not in log.replace("train: {", "")  # the originals were not used for training
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["augment"]["copies"]["n"] == 2 and resolved["view"] == "crop"
    # a second run finds every copy in the cache
    again = _train(tmp_path / "again", photo_like, "crop", {"n": 2, "keep_original": False})
    assert "train copy 1: 24 images, 0 encoded now, 24 from cache" in (again / "train.log").read_text()


def test_extract_view_keeps_an_image_only_with_all_its_crops(photo_like, tmp_path):
    from aigi.backbones import load_backbone

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    paths = [*sorted((photo_like / "val" / "0_real").glob("*.png"))[:2], bad]
    cache = FeatureCache(load_backbone("random:tiny-clip"), root=tmp_path / "cache")
    res = cache.extract_view(paths, "multicrop:2", keys=("embed",))
    assert res.kept == [0, 1] and res.views == 2 and res.features["embed"].shape[0] == 4
    assert [p for p, _ in res.errors] == [str(bad)]
    single = cache.extract_view(paths[:1], "crop", keys=("embed",))
    assert single.encoded == 0  # crop 0 of any view is the centre crop, cached once
    assert torch.equal(single.features["embed"][0], res.features["embed"][0])


def test_an_image_no_larger_than_the_crop_shares_the_plain_cache_key(tmp_path):
    """Every crop of a thumbnail is the thumbnail: the crop views read what the resize view cached."""
    from aigi.backbones import load_backbone

    paths = []
    for i, size in enumerate(((20, 24), (30, 30), (90, 70))):
        paths.append(tmp_path / f"{i}.png")
        make_image(i % 2, np.random.default_rng(i), size=size).save(paths[-1])
    cache = FeatureCache(load_backbone("random:tiny-clip"), root=tmp_path / "cache")
    plain = cache.extract(paths, keys=("embed",))
    res = cache.extract_view(paths, "multicrop:2", keys=("embed",))
    assert res.encoded == 2  # only the 90 × 70 image's two crops
    assert res.kept == [0, 1, 2] and res.features["embed"].shape[0] == 6
    for i in (0, 1):  # each thumbnail's two rows are its plain features
        assert torch.equal(res.features["embed"][2 * i], plain.features["embed"][i])
        assert torch.equal(res.features["embed"][2 * i + 1], plain.features["embed"][i])
    assert not torch.equal(res.features["embed"][4], res.features["embed"][5])


def test_balanced_sampling_draws_every_source_and_class_equally():
    from aigi.data.datasets import Sample
    from aigi.training.trainer import balance_weights, epoch_order

    samples = ([Sample(Path(f"a{i}"), 1, "big") for i in range(90)] + [Sample(Path(f"b{i}"), 1, "small") for i in range(10)]
               + [Sample(Path(f"c{i}"), 0, "big") for i in range(50)])
    w = balance_weights(samples, "subset_class")
    groups = {("big", 1): w[:90].sum(), ("small", 1): w[90:100].sum(), ("big", 0): w[100:].sum()}
    assert all(float(v) == pytest.approx(1.0) for v in groups.values())
    by_class = balance_weights(samples, "class")
    assert float(by_class[:100].sum()) == pytest.approx(float(by_class[100:].sum()))
    assert balance_weights(samples, "none") is None
    order = epoch_order(len(samples), w, torch.Generator().manual_seed(0))
    drawn = torch.bincount((order >= 90).long() + (order >= 100).long(), minlength=3).float() / len(order)
    assert torch.allclose(drawn, torch.full((3,), 1 / 3), atol=0.08)  # 150 draws: each group about a third
    assert sorted(epoch_order(5, None, torch.Generator().manual_seed(0)).tolist()) == [0, 1, 2, 3, 4]


def test_balance_is_refused_by_a_trainer_that_does_not_read_it():
    with pytest.raises(ConfigError, match="train.balance: the 'bank' trainer"):
        aigi.train({"detector": "univfd-knn", "train": {"balance": "class"}, "data": {"train": "x"}}, echo=None)


def test_a_balanced_run_trains(photo_like, tmp_path):
    recipe = {"detector": "univfd", "backbone": "random:tiny-clip", "view": "crop",
              "data": {"train": str(photo_like / "train"), "val": str(photo_like / "val")},
              "train": {"epochs": 30, "lr": 0.01, "batch_size": 16, "balance": "subset_class"},
              "output": str(tmp_path / "run")}
    run = aigi.train(recipe, echo=None)
    assert json.loads((run / "metrics.json").read_text())["validation"]["auc"] > 0.8


@pytest.mark.parametrize("text, limit", [("crop@512", 512), ("multicrop:3@300", 300), ("crop", None)])
def test_a_size_cap_parses_and_prints_back(text, limit):
    view = View.parse(text)
    assert view.limit == limit and str(view) == text and View.parse(str(view)) == view


@pytest.mark.parametrize("text, why", [("resize@512", "resize already scales"), ("crop@16", "at least 32"),
                                       ("crop@", "valid:"), ("multicrop:12@512", "K must lie in 2")])
def test_bad_size_caps_are_refused(text, why):
    with pytest.raises(ConfigError, match=why):
        View.parse(text)


def test_a_capped_view_scales_only_images_over_the_cap_then_crops_natively():
    view = View.parse("crop@100")
    big, small = _grid(400, 200), _grid(90, 60)
    fitted = view.fit(big)
    assert fitted.size == (200, 100)  # short side to 100, aspect kept
    assert np.array_equal(np.asarray(view.crop(big, 0, 64)), np.asarray(fitted)[18:82, 68:132])  # a crop of the fit
    assert view.fit(small) is small and np.array_equal(np.asarray(view.crop(small, 0, 64)),
                                                        np.asarray(small)[:, 13:77])
    assert view.random_crop(big, 64, np.random.default_rng(0)).size == (64, 64)
    tall = View.parse("crop@50").fit(_grid(100, 300))
    assert tall.size == (50, 150)


def test_a_capped_view_reads_the_same_through_the_cache_and_detect(tmp_path):
    """The feature cache keys capped crops apart, and what it caches is what detect scores."""
    from aigi.methods.univfd import UnivFDProbe

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i, size in enumerate([(120, 90), (60, 50), (40, 30)]):  # over the cap, under it, under the crop
        make_image(i % 2, rng, size=size).save(folder / f"{i}.png")
    paths = sorted(folder.glob("*.png"))
    det = UnivFDProbe("random:tiny-clip@0", embed_dim=16)
    det.view = View.parse("crop@48")
    cache = FeatureCache(det.backbone, root=tmp_path / "cache")
    capped = cache.extract_view(paths, det.view, keys=(det.cache_point(),)).features[det.cache_point()]
    plain = cache.extract_view(paths, "crop", keys=(det.cache_point(),)).features[det.cache_point()]
    assert not torch.allclose(capped[0], plain[0])  # the big image is scaled before its crop
    logits = det.logits_from_features(capped).tolist()
    probs = [p.prob_fake for p in det.predict([str(p) for p in paths])]
    assert probs == pytest.approx(torch.sigmoid(torch.tensor(logits)).tolist(), abs=1e-5)
