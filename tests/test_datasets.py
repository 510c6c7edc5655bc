"""Dataset layouts and manifests, built as tiny file trees in tmp_path."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from aigi.data.datasets import LABEL_DIRS, ImageDataset, Sample, load_dataset


def _touch(root: Path, *rels: str) -> None:
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")  # content is irrelevant: loading never decodes


def _rel(ds: ImageDataset, root: Path) -> list[tuple[str, int, str]]:
    return [(s.path.relative_to(root).as_posix(), s.label, s.subset) for s in ds]


def test_label_dirs_table() -> None:
    assert LABEL_DIRS == {"0_real": 0, "1_fake": 1, "real": 0, "fake": 1, "nature": 0, "ai": 1}


def test_forensynths_two_level_nesting_subset_depth(tmp_path: Path) -> None:
    root = tmp_path / "cnnspot"
    _touch(
        root,
        "progan/airplane/0_real/a.png",
        "progan/airplane/1_fake/b.png",
        "progan/cat/0_real/c.png",
        "progan/cat/1_fake/deep/d.png",  # images nested below a label dir count too
        "progan/cat/1_fake/e.txt",
        "progan/cat/1_fake/.f.png",
        "stylegan/car/1_fake/g.png",
        ".trash/0_real/h.png",
    )
    ds = load_dataset(root)
    assert ds.name == "cnnspot"
    assert _rel(ds, root) == [
        ("progan/airplane/0_real/a.png", 0, "progan"),
        ("progan/cat/0_real/c.png", 0, "progan"),
        ("progan/airplane/1_fake/b.png", 1, "progan"),
        ("progan/cat/1_fake/deep/d.png", 1, "progan"),
        ("stylegan/car/1_fake/g.png", 1, "stylegan"),
    ]
    assert ds.counts() == {"progan": {"real": 2, "fake": 2}, "stylegan": {"real": 0, "fake": 1}}
    full = load_dataset(root, subset_depth=0)
    assert full.subsets() == ["progan/airplane", "progan/cat", "stylegan/car"]


def test_label_dir_directly_under_root_uses_root_name(tmp_path: Path) -> None:
    root = tmp_path / "cifake"
    _touch(root, "test/0_real/a.jpg", "test/1_fake/b.jpg", "train/1_fake/c.jpg")
    direct = load_dataset(root / "test")
    assert direct.name == "test" and direct.subsets() == ["test"]
    assert direct.labels == [0, 1]
    assert load_dataset(root).subsets() == ["test", "train"]


def test_aliases_case_insensitive_and_no_descent_into_label_dirs(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    _touch(root, "a/Real/x.png", "a/FAKE/y.png", "b/1_fake/real/z.png")
    ds = load_dataset(root)
    assert _rel(ds, root) == [
        ("a/Real/x.png", 0, "a"),
        ("a/FAKE/y.png", 1, "a"),
        ("b/1_fake/real/z.png", 1, "b"),  # inner "real" is content of a fake folder
    ]


def test_genimage_layout(tmp_path: Path) -> None:
    root = tmp_path / "genimage"
    _touch(
        root,
        "sdv14/val/ai/1.png",
        "sdv14/val/nature/2.JPEG",
        "midjourney/val/ai/3.png",
        "midjourney/val/nature/4.jpeg",
        "midjourney/val/nature/5.jpeg",
    )
    ds = load_dataset(root)
    assert ds.subsets() == ["midjourney", "sdv14"]
    assert ds.counts() == {"midjourney": {"real": 2, "fake": 1}, "sdv14": {"real": 1, "fake": 1}}
    assert load_dataset(root, subset_depth=2).subsets() == ["midjourney/val", "sdv14/val"]
    by = ds.by_subset()
    assert [s.path.name for s in by["midjourney"]] == ["4.jpeg", "5.jpeg", "3.png"]


def test_csv_manifest_relative_paths_and_label_spellings(tmp_path: Path) -> None:
    folder = tmp_path / "lists"
    folder.mkdir()
    manifest = folder / "val.csv"
    manifest.write_text(
        "path,label,subset\n"
        "imgs/a.png,1,sd\n"
        f"{tmp_path / 'abs.png'},REAL,sd\n"
        "imgs/b.png,nature,\n"
        "imgs/c.png,Ai,mj\n"
        ",,\n",
        encoding="utf-8",
    )
    ds = load_dataset(manifest)
    assert ds.name == "val"
    assert [(s.path, s.label, s.subset) for s in ds] == [
        (folder / "imgs/c.png", 1, "mj"),
        (tmp_path / "abs.png", 0, "sd"),  # absolute paths are kept as written
        (folder / "imgs/a.png", 1, "sd"),
        (folder / "imgs/b.png", 0, "val"),  # missing subset -> manifest stem
    ]
    assert ds.subsets() == ["mj", "sd", "val"]
    assert ds.samples[0] == Sample(folder / "imgs/c.png", 1, "mj")


def test_jsonl_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "set.jsonl"
    rows = [
        {"path": "x/1.png", "label": 0},
        {"path": "x/2.png", "label": "fake", "subset": "gen"},
        {"path": "x/3.png", "label": "1"},
    ]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    ds = load_dataset(manifest)
    assert [(s.path.name, s.label, s.subset) for s in ds] == [
        ("2.png", 1, "gen"),
        ("1.png", 0, "set"),
        ("3.png", 1, "set"),
    ]
    assert ds.paths[1] == tmp_path / "x" / "1.png"


def test_bad_label_row_names_file_and_line(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    lines = ["path,label"] + [f"img{i}.png,{i % 2}" for i in range(5)] + ["bad.png,maybe"]
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as info:
        load_dataset(manifest)
    assert str(info.value) == f"{manifest}:7: unknown label 'maybe' (use 0/1, real/fake, nature/ai)"
    assert str(info.value).endswith("manifest.csv:7: unknown label 'maybe' (use 0/1, real/fake, nature/ai)")


def test_bad_jsonl_rows(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"path": "a.png", "label": 0}\n{"path": "b.png", "label": 2}\n')
    with pytest.raises(ValueError, match=r"m\.jsonl:2: unknown label 2"):
        load_dataset(manifest)
    manifest.write_text('{"path": "a.png", "label": 0}\nnot json\n')
    with pytest.raises(ValueError, match=r"m\.jsonl:2: invalid JSON"):
        load_dataset(manifest)


def test_csv_missing_column(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,subset\na.png,x\n")
    with pytest.raises(ValueError, match=r"m\.csv:1: missing required column\(s\) label"):
        load_dataset(manifest)


def test_errors_for_missing_empty_and_unlabelled_trees(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    plain = tmp_path / "plain"
    _touch(plain, "cats/a.png")
    with pytest.raises(ValueError) as info:
        load_dataset(plain)
    assert str(info.value) == f"no 0_real/1_fake (or real/fake, nature/ai) folders found under {plain}"
    hollow = tmp_path / "hollow"
    (hollow / "g" / "0_real").mkdir(parents=True)
    (hollow / "g" / "1_fake").mkdir(parents=True)
    _touch(hollow, "g/1_fake/readme.txt")
    with pytest.raises(ValueError, match="no images found"):
        load_dataset(hollow)
    # An empty label folder next to a populated one is fine.
    _touch(hollow, "h/0_real/a.png")
    assert load_dataset(hollow).counts() == {"h": {"real": 1, "fake": 0}}


def test_limit_per_class_is_deterministic_and_per_subset(tmp_path: Path) -> None:
    root = tmp_path / "big"
    _touch(root, *[f"g1/0_real/{i:02d}.png" for i in range(10)])
    _touch(root, *[f"g1/1_fake/{i:02d}.png" for i in range(3)])
    _touch(root, *[f"g2/1_fake/{i:02d}.png" for i in range(8)])
    ds = load_dataset(root)
    small = ds.limit_per_class(4, seed=1)
    assert small.counts() == {"g1": {"real": 4, "fake": 3}, "g2": {"real": 0, "fake": 4}}
    assert small.samples == ds.limit_per_class(4, seed=1).samples
    order = {s.path: i for i, s in enumerate(ds)}
    assert [order[s.path] for s in small] == sorted(order[s.path] for s in small)  # order kept
    picks = {tuple(s.path.name for s in ds.limit_per_class(4, seed=k) if s.subset == "g1" and s.label == 0) for k in range(6)}
    assert len(picks) > 1  # the seed matters
    assert ds.limit_per_class(100).samples == ds.samples
    assert len(ds.limit_per_class(0)) == 0
    # Adding another subset does not change the pick inside g1.
    _touch(root, *[f"g3/1_fake/{i:02d}.png" for i in range(5)])
    again = load_dataset(root).limit_per_class(4, seed=1)
    assert [s for s in again if s.subset == "g1"] == [s for s in small if s.subset == "g1"]


def test_dataset_helpers(tmp_path: Path) -> None:
    ds = ImageDataset("d", [Sample(Path("b"), 1, "y"), Sample(Path("a"), 0, "x")])
    assert len(ds) == 2 and list(ds) == ds.samples
    assert ds.subsets() == ["x", "y"]
    assert ds.labels == [1, 0] and ds.paths == [Path("b"), Path("a")]
    assert list(ds.by_subset()) == ["x", "y"]
    with pytest.raises(ValueError):
        ds.limit_per_class(-1)
