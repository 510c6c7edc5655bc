"""Benchmark layout readers on small fake trees, and `aigi datasets check`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from aigi.cli import app
from aigi.data.suites import SUITES, load_suite

runner = CliRunner()


def _img(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)


def _tree(root: Path, files: list[str]) -> Path:
    for i, rel in enumerate(files):
        _img(root / rel, i)
    return root


def _counts(ds):
    return {k: (v["real"], v["fake"]) for k, v in ds.counts().items()}


def test_univfd_layout_with_classes_and_diffusion_datasets(tmp_path):
    root = _tree(tmp_path, [
        "progan/airplane/0_real/a.png", "progan/airplane/1_fake/a.png", "progan/cat/0_real/b.png",
        "progan/cat/1_fake/b.png", "stylegan/0_real/c.png", "stylegan/1_fake/c.png",
        "diffusion_datasets/glide_100_27/1_fake/d.png", "diffusion_datasets/glide_100_27/0_real/d.png",
        "diffusion_datasets/laion/0_real/e.png",
    ])
    ds = load_suite(root, "univfd")
    assert _counts(ds) == {"progan": (2, 2), "stylegan": (1, 1), "glide_100_27": (1, 1), "laion": (1, 0)}


def test_genimage_uses_the_val_split(tmp_path):
    root = _tree(tmp_path, ["Midjourney/val/ai/a.png", "Midjourney/val/nature/b.png", "Midjourney/train/ai/c.png",
                            "VQDM/val/ai/d.png", "VQDM/val/ai/e.png", "VQDM/val/nature/f.png"])
    assert _counts(load_suite(root, "genimage")) == {"Midjourney": (1, 1), "VQDM": (1, 2)}
    assert _counts(load_suite(root, "genimage", split="train")) == {"Midjourney": (0, 1)}


def test_drct2m_pairs_every_generator_with_the_coco_reals(tmp_path):
    root = _tree(tmp_path, ["MSCOCO/val2017/r1.jpg", "MSCOCO/val2017/r2.jpg", "ldm-text2im/val2017/f1.png",
                            "sd-v1/val2017/f2.png", "sd-v1/val2017/f3.png"])
    ds = load_suite(root, "drct2m")
    assert _counts(ds) == {"ldm-text2im": (2, 1), "sd-v1": (2, 2)}
    assert {s.path.name for s in ds.samples if s.label == 0} == {"r1.jpg", "r2.jpg"}


def test_synthbuster_pairs_with_raise(tmp_path):
    root = _tree(tmp_path, ["RAISE/x.png", "dalle3/a.png", "midjourney-v5/b.png", "midjourney-v5/c.png"])
    assert _counts(load_suite(root, "synthbuster")) == {"dalle3": (1, 1), "midjourney-v5": (1, 2)}
    with pytest.raises(ValueError, match="no real images"):
        load_suite(_tree(tmp_path / "noraise", ["gen/a.png"]), "synthbuster")


def test_wildrf_chameleon_aigcdetect(tmp_path):
    wild = _tree(tmp_path / "wild", ["test/reddit/0_real/a.png", "test/reddit/1_fake/b.png",
                                     "test/twitter/0_real/c.png", "test/facebook/1_fake/d.png"])
    assert _counts(load_suite(wild, "wildrf")) == {"facebook": (0, 1), "reddit": (1, 1), "twitter": (1, 0)}
    cham = _tree(tmp_path / "cham", ["test/0_real/a.png", "test/1_fake/b.png", "test/1_fake/c.png"])
    assert _counts(load_suite(cham, "chameleon")) == {"chameleon": (1, 2)}
    aigc = _tree(tmp_path / "aigc", ["test/progan/car/0_real/a.png", "test/progan/car/1_fake/b.png",
                                     "test/wukong/0_real/c.png", "test/wukong/1_fake/d.png"])
    assert _counts(load_suite(aigc, "aigcdetect")) == {"progan": (1, 1), "wukong": (1, 1)}


def test_every_suite_is_registered_and_errors_name_the_path(tmp_path):
    assert set(SUITES.names()) >= {"folder", "univfd", "aigcdetect", "genimage", "drct2m", "synthbuster",
                                   "wildrf", "chameleon"}
    with pytest.raises(ValueError, match="nowhere"):
        load_suite(tmp_path / "nowhere", "genimage")
    with pytest.raises(ValueError, match="GenImage layout"):
        load_suite(_tree(tmp_path / "flat", ["a.png"]), "genimage")


def test_datasets_check_reports_counts_unreadable_and_duplicates(tmp_path):
    root = _tree(tmp_path / "d", ["gen/0_real/a.png", "gen/1_fake/b.png", "gen/1_fake/c.png"])
    (root / "gen" / "1_fake" / "copy_of_a.png").write_bytes((root / "gen" / "0_real" / "a.png").read_bytes())
    (root / "gen" / "0_real" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    res = runner.invoke(app, ["datasets", "check", str(root), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["subsets"] == {"gen": {"real": 2, "fake": 3}}
    assert [u["path"].endswith("broken.png") for u in report["unreadable"]] == [True]
    assert report["cross_label_duplicates"] == 1 and len(report["duplicate_groups"]) == 1
    text = runner.invoke(app, ["datasets", "check", str(root)]).output
    assert "real AND fake" in text and "unreadable: 1" in text


def test_eval_reads_a_suite(tmp_path, tiny_data):
    root = tmp_path / "genimage"
    for gen in ("sdv4", "glide"):
        for src_folder, dst_folder in (("0_real", "nature"), ("1_fake", "ai")):
            for i, src in enumerate(sorted((tiny_data / "val" / src_folder).glob("*.png"))[:3]):
                dst = root / gen / "val" / dst_folder / f"{i}.png"
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(src.read_bytes())
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"detector: univfd\nbackbone: random:tiny-clip\ndata: {{train: {tiny_data / 'train'}, val: {tiny_data / 'val'}}}\noutput: {tmp_path / 'run'}\n")
    assert runner.invoke(app, ["train", str(recipe)]).exit_code == 0
    res = runner.invoke(app, ["eval", "-d", str(tmp_path / "run"), "--data", str(root), "--suite", "genimage",
                              "-o", str(tmp_path / "ev"), "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "ev" / "metrics.json").read_text())["metrics"]
    assert set(rows) == {"glide", "sdv4", "all", "mean"} and rows["sdv4"]["n"] == 6
