"""The public training pool: scanned from a git repository by commit and path,
verified against its manifest, and every rejection rule applied and counted."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aigi.data.pool import manifest
from aigi.data.pool.build import build
from aigi.data.pool.perceptual import NEAR_BITS, as_array, distances
from aigi.data.pool.sources import EXTERNAL, FAKE, REAL, SOURCES, Rule, Source


def _noise(seed: int, size=(300, 300)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def _smooth(seed: int, size=(320, 320)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)


@pytest.fixture
def repo(tmp_path) -> tuple[Path, str]:
    """A git repository holding one case of every rule; returns (clones folder, commit)."""
    root = tmp_path / "clones" / "me+toy"
    for d in ("real", "fake", "assets", "marked"):
        (root / d).mkdir(parents=True)
    _noise(1).save(root / "real" / "a.png")
    _noise(2).save(root / "real" / "b.png")
    _noise(3, (100, 120)).save(root / "real" / "small.png")
    _noise(4).save(root / "fake" / "x.png")
    (root / "fake" / "copy_of_x.png").write_bytes((root / "fake" / "x.png").read_bytes())
    _smooth(5).save(root / "real" / "street.png")
    _smooth(5).save(root / "fake" / "street_again.jpg", quality=95)  # same picture, other bytes, other class
    Image.new("RGB", (512, 512)).save(root / "fake" / "black.png")
    _smooth(6).save(root / "assets" / "frame.png")
    _smooth(6, (512, 512)).save(root / "fake" / "refused.png")  # the frame, as a refused output
    _noise(7, (400, 300)).save(root / "marked" / "m.png")
    (root / "README.md").write_text("not an image")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    for cmd in (["git", "init", "-q"], ["git", "add", "."], ["git", "commit", "-q", "-m", "images"]):
        subprocess.run(cmd, cwd=root, check=True, env=env)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True, capture_output=True, text=True,
                            env=env).stdout.strip()
    return tmp_path / "clones", commit


def _sources(commit: str) -> tuple[Source, ...]:
    return (Source("toy", "me/toy", commit[:7], (Rule(r"real/[^/]+\.png", REAL), Rule(r"fake/[^/]+\.(png|jpg)", FAKE, "gen")),
                   "MIT", placeholder="assets/frame.png"),
            Source("marked", "me/toy", commit[:7], (Rule(r"marked/[^/]+\.png", FAKE, "gen"),), "MIT", watermark="corner"))


def test_scan_then_build_applies_and_counts_every_rule(repo, tmp_path):
    clones, commit = repo
    sources = _sources(commit)
    rows = manifest.scan(clones, sources)
    assert {r.commit for r in rows} == {commit}  # the full id is pinned
    assert sorted(r.path for r in rows if r.source == "toy") == [
        "fake/black.png", "fake/copy_of_x.png", "fake/refused.png", "fake/street_again.jpg", "fake/x.png",
        "real/a.png", "real/b.png", "real/small.png", "real/street.png"]
    path = manifest.write(rows, tmp_path / "manifest.csv")
    assert manifest.read(path) == rows
    report = build(clones, tmp_path / "pool", path, sources=sources)
    assert report["rules"]["toy"] == {"too_small": 1, "duplicate": 1, "placeholder": 2,
                                      "near_duplicate_across_classes": 2}
    assert report["rules"]["marked"] == {"watermark_cropped": 1}
    assert report["kept"] == {"toy": {"real": 2, "fake": 1}, "marked": {"fake": 1}}
    pool = tmp_path / "pool"
    assert len(list((pool / "toy" / "0_real").iterdir())) == 2 and len(list((pool / "toy" / "1_fake").iterdir())) == 1
    marked = next((pool / "marked" / "1_fake").iterdir())
    assert Image.open(marked).size == (400, 276)  # the bottom 8 % (the corner mark) cropped off
    assert json.loads((pool / "report.json").read_text())["total"] == {"real": 2, "fake": 2}
    from aigi.data.datasets import load_dataset

    assert load_dataset(pool / "toy").counts() == {"toy": {"real": 2, "fake": 1}}  # trains as it is


def test_bytes_that_differ_from_the_manifest_are_refused(repo, tmp_path):
    clones, commit = repo
    sources = _sources(commit)
    rows = manifest.scan(clones, sources)
    rows[0].sha256 = "0" * 64
    report = build(clones, tmp_path / "pool", manifest.write(rows, tmp_path / "m.csv"), sources=sources)
    assert report["rules"]["toy"]["sha_mismatch"] == 1


def test_cli_builds_the_pool_and_names_a_missing_clone(repo, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import aigi.data.pool.sources as pool_sources
    from aigi.cli import app

    clones, commit = repo
    sources = _sources(commit)
    path = manifest.write(manifest.scan(clones, sources), tmp_path / "m.csv")
    monkeypatch.setitem(pool_sources.SETS, "pool", sources)
    res = CliRunner().invoke(app, ["datasets", "build-pool", "--clones", str(clones), "-o", str(tmp_path / "p"),
                                   "--manifest", str(path)])
    assert res.exit_code == 0, res.output
    assert "toy" in res.output and "total        real     2  fake     2" in res.output
    res = CliRunner().invoke(app, ["datasets", "build-pool", "--clones", str(tmp_path / "none"), "-o",
                                   str(tmp_path / "p2"), "--manifest", str(path)])
    assert res.exit_code == 2 and "no clone of me/toy" in res.output


def test_cifake_joins_the_pool_as_one_more_source(repo, tmp_path, monkeypatch):
    """--cifake adds N files per class, picked by content hash (one per content), to pool.csv and the report."""
    from typer.testing import CliRunner

    import aigi.data.pool.sources as pool_sources
    from aigi.cli import app

    clones, commit = repo
    sources = _sources(commit)
    path = manifest.write(manifest.scan(clones, sources), tmp_path / "m.csv")
    monkeypatch.setitem(pool_sources.SETS, "pool", sources)
    cifake = tmp_path / "cifake"
    for sub, base in (("0_real", 0), ("1_fake", 100)):
        (cifake / sub).mkdir(parents=True)
        for i in range(5):
            _noise(base + i, (32, 32)).save(cifake / sub / f"{i}.jpg")
    (cifake / "1_fake" / "dup.jpg").write_bytes((cifake / "1_fake" / "0.jpg").read_bytes())
    args = ["datasets", "build-pool", "--clones", str(clones), "--manifest", str(path), "--cifake", str(cifake),
            "--cifake-per-class", "3"]
    res = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert "cifake       real     3  fake     3" in res.output
    pool = tmp_path / "p"
    picked = sorted(p.name for p in (pool / "cifake" / "1_fake").iterdir())
    assert len(picked) == 3 and len(set(p.split(".")[0] for p in picked)) == 3
    rows = (pool / "pool.csv").read_text().splitlines()
    assert sum(r.startswith("cifake/") for r in rows) == 6
    assert json.loads((pool / "report.json").read_text())["total"] == {"real": 5, "fake": 5}
    res = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "p2")])  # the same files on a second build
    assert sorted(p.name for p in (tmp_path / "p2" / "cifake" / "1_fake").iterdir()) == picked


def test_the_shipped_manifest_covers_every_source():
    rows = manifest.read()
    assert {r.source for r in rows} == {s.name for s in SOURCES}
    assert all(len(r.commit) == 40 and len(r.sha256) == 64 for r in rows)
    assert {r.label for r in rows} == {"real", "fake"} and len(rows) > 4000


def test_external_sources_cut_captions_limit_per_class_and_leave_out_pool_files(repo, tmp_path):
    import hashlib

    clones, commit = repo
    card = Source("cards", "me/toy", commit[:7], (Rule(r"real/(?:a|b)\.png", REAL), Rule(r"fake/x\.png", FAKE, "g"),
                                                   Rule(r"marked/m\.png", FAKE, "g")),
                  "MIT", crop=(0, 0, 280, 200), per_class=1)
    rows = manifest.scan(clones, (card,))
    reals = sorted(hashlib.sha256((clones / "me+toy" / "real" / n).read_bytes()).hexdigest() for n in ("a.png", "b.png"))
    fakes = sorted(hashlib.sha256((clones / "me+toy" / p).read_bytes()).hexdigest() for p in ("fake/x.png", "marked/m.png"))
    assert sorted((r.label, r.sha256) for r in rows) == [("fake", fakes[0]), ("real", reals[0])]  # smallest hash each
    path = manifest.write(rows, tmp_path / "m.csv")
    report = build(clones, tmp_path / "ext", path, sources=(card,), exclude=manifest.Held(frozenset({fakes[0]})))
    assert report["rules"]["cards"] == {"in_pool": 1, "card_cropped": 1}
    assert report["kept"] == {"cards": {"real": 1}}
    assert Image.open(next((tmp_path / "ext" / "cards" / "0_real").iterdir())).size == (280, 200)


def test_the_shipped_external_manifest_is_disjoint_from_the_pool():
    pool = manifest.read()
    external = manifest.read(manifest.EXTERNAL_MANIFEST)
    assert {r.source for r in external} == {s.name for s in EXTERNAL}
    assert not {s.name for s in EXTERNAL} & {s.name for s in SOURCES}
    assert not {s.repo for s in EXTERNAL} & {s.repo for s in SOURCES}  # not one repository shared
    assert not {r.sha256 for r in external} & {r.sha256 for r in pool}
    pool_hashes = as_array(int(r.dhash, 16) for r in pool)  # nor a resized or re-encoded copy of one
    assert min(distances(pool_hashes, int(r.dhash, 16)).min() for r in external) > NEAR_BITS
    assert {r.label for r in external} == {"real", "fake"} and len(external) > 2000


def test_a_test_set_leaves_out_the_pools_pictures_re_encoded_or_not(repo, tmp_path):
    """The same picture saved again (other bytes) is no test of generalisation: the manifest scan
    leaves it out of an external set, and so does the build, for a manifest written by hand."""
    clones, commit = repo
    train = Source("train", "me/toy", commit[:7], (Rule(r"real/street\.png", REAL), Rule(r"real/a\.png", REAL)), "MIT")
    test = Source("test", "me/toy", commit[:7], (Rule(r"fake/street_again\.jpg", FAKE, "g"),
                                                 Rule(r"real/(?:a|b)\.png", REAL)), "MIT")
    pool, rows = manifest.scan(clones, (train,)), manifest.scan(clones, (test,))
    kept = manifest.leave_out(rows, pool)
    assert sorted(r.path for r in kept) == ["real/b.png"]  # a.png: the same file; street_again: the same picture
    path = manifest.write(rows, tmp_path / "test.csv")
    report = build(clones, tmp_path / "ext", path, sources=(test,), exclude=manifest.Held.of(pool))
    assert report["rules"]["test"] == {"in_pool": 1, "near_pool": 1}
    assert report["kept"] == {"test": {"real": 1}}


def test_an_unknown_source_set_is_named():
    from typer.testing import CliRunner

    from aigi.cli import app

    res = CliRunner().invoke(app, ["datasets", "build-pool", "--clones", ".", "-o", "x", "--set", "nope"])
    assert res.exit_code == 2 and "unknown source set 'nope' (known: pool, external, all)" in res.output


def test_the_all_set_builds_pool_and_external_into_one_folder(repo, tmp_path, monkeypatch):
    """`--set all`: both manifests read in turn into one pool (every source a fold for `aigi loso`);
    it has no manifest of its own to rescan."""
    from typer.testing import CliRunner

    import aigi.data.pool.sources as pool_sources
    from aigi import api
    from aigi.cli import app

    clones, commit = repo
    train = Source("train", "me/toy", commit[:7], (Rule(r"real/a\.png", REAL), Rule(r"fake/x\.png", FAKE, "g")), "MIT")
    test = Source("test", "me/toy", commit[:7], (Rule(r"real/b\.png", REAL), Rule(r"marked/m\.png", FAKE, "h")), "MIT")
    paths = (manifest.write(manifest.scan(clones, (train,)), tmp_path / "pool.csv"),
             manifest.write(manifest.scan(clones, (test,)), tmp_path / "external.csv"))
    monkeypatch.setitem(pool_sources.SETS, "all", (train, test))
    monkeypatch.setitem(manifest.MANIFESTS, "all", paths)
    report = api.build_pool(clones, tmp_path / "all", which="all")
    assert report["kept"] == {"test": {"real": 1, "fake": 1}, "train": {"real": 1, "fake": 1}}
    assert report["manifest"] == f"{paths[0]}, {paths[1]}"
    rows = (tmp_path / "all" / "pool.csv").read_text().splitlines()[1:]
    assert sorted(r.split(",")[2] for r in rows) == ["test", "test", "train", "train"]
    res = CliRunner().invoke(app, ["datasets", "pool-manifest", "--clones", str(clones), "--set", "all"])
    assert res.exit_code == 2 and "the 'all' set has no manifest of its own" in res.output
