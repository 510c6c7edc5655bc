"""``aigi detect --engine ray``: a local Ray runtime with 2 scoring actors gives the records of
``aigi detect``, bad files included; a rerun into the same folder scores nothing new."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import aigi

pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ray-run") / "run"
    return aigi.train({"detector": "univfd", "backbone": "random:tiny-clip@0", "output": str(out),
                       "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
                       "train": {"epochs": 5, "batch_size": 8}})


def _folder(tiny_data: Path, tmp_path: Path) -> Path:
    """Test images, a file that is not an image and an empty one."""
    import shutil

    folder = tmp_path / "images"
    shutil.copytree(tiny_data / "test", folder)
    (folder / "notes.png").write_text("not an image")
    (folder / "empty.jpg").write_bytes(b"")
    return folder


def test_ray_scores_what_detect_scores_and_resumes(tiny_data, tiny_run, tmp_path):
    folder = _folder(tiny_data, tmp_path)
    files, _, _ = aigi.api.find_images([folder])
    plain = {p.path: p for p in aigi.detect(files, tiny_run)}

    out = tmp_path / "results"
    counts = aigi.api.detect_scaled(files, tiny_run, out, engine="ray", batch_size=5, actors=2)
    assert counts["scored"] == len(files) and counts["error"] == 2 and counts["already"] == 0
    table = pq.read_table(out).to_pylist()  # the folder reads as one table
    assert sorted(r["path"] for r in table) == sorted(plain)  # each image once
    for r in table:
        p = plain[r["path"]]
        assert r["verdict"] == p.verdict and (r["error"] is None) == (p.error is None)
        if p.error is None:
            assert r["prob_fake"] == pytest.approx(p.prob_fake, abs=1e-5)
        else:
            assert r["prob_fake"] is None and r["error"] == p.error
        assert r["detector"] == str(tiny_run) and r["precision"] == "fp32" and r["runtime"] == "torch"
        assert r["threshold"] == aigi.detector_info(tiny_run)["threshold"]

    again = aigi.api.detect_scaled(files, tiny_run, out, engine="ray", actors=2)
    assert again == {"scored": 0, "fake": 0, "real": 0, "error": 0, "already": len(files)}
    assert len(pq.read_table(out)) == len(files)

    strict = aigi.api.detect_scaled(files, tiny_run, tmp_path / "strict", engine="ray", threshold=1.5)
    assert strict["fake"] == 0 and strict["real"] == len(files) - 2  # nothing reaches P(fake) 1.5
    assert {r["threshold"] for r in pq.read_table(tmp_path / "strict").to_pylist()} == {1.5}


def test_a_torn_output_file_is_set_aside_and_its_images_scored_again(tmp_path):
    from aigi.engines.ray_data import done_paths, schema

    out = tmp_path / "results"
    out.mkdir()
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist([{"path": str(tmp_path / "a.png")}], schema=schema()), out / "good.parquet")
    (out / "cut.parquet").write_bytes(b"PAR1\x00\x01")
    notes: list[str] = []
    assert done_paths(out, notes.append) == {str((tmp_path / "a.png").resolve())}
    assert (out / "cut.parquet.torn").is_file() and not (out / "cut.parquet").exists()
    assert "cut.parquet: unreadable" in notes[0]


def test_lists_of_paths_are_inputs(tiny_data, tmp_path):
    import pyarrow as pa

    images = sorted((tiny_data / "test").rglob("*.png"))[:3]
    (tmp_path / "list.csv").write_text("path,label\n" + "".join(f"{p},1\n" for p in images) + "missing.png,0\n")
    (tmp_path / "list.jsonl").write_text("".join(json.dumps({"path": str(p)}) + "\n" for p in images))
    pq.write_table(pa.table({"path": [str(p) for p in images]}), tmp_path / "list.parquet")
    for name in ("list.jsonl", "list.parquet"):
        files, problems, _ = aigi.api.find_images([tmp_path / name])
        assert files == images and not problems
    files, _, _ = aigi.api.find_images([tmp_path / "list.csv"])
    assert files == [*images, tmp_path / "missing.png"]  # listed and missing: scored into an error record
    (tmp_path / "bad.csv").write_text("file\nx.png\n")
    with pytest.raises(aigi.errors.InputError, match=r"bad\.csv: a list of images needs a 'path' column"):
        aigi.api.find_images([tmp_path / "bad.csv"])


def test_cli_refuses_ray_without_a_folder(tmp_path):
    from typer.testing import CliRunner

    from aigi.cli import app

    res = CliRunner().invoke(app, ["detect", "--engine", "ray", str(tmp_path)])
    assert res.exit_code != 0 and "--out" in res.output
    res = CliRunner().invoke(app, ["detect", "--engine", "spark", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "unknown engine 'spark' (known: local, ray)" in res.output
