"""The results file of `aigi detect` cannot be corrupted: torn lines, retries, path
spellings, foreign files, two runs at once, pipes and files that are not images."""
from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import aigi
from aigi.cli import app
from aigi.errors import InputError
from aigi.locks import exclusive

runner = CliRunner()


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """A saved detector on a tiny random backbone: fast, and scores are deterministic."""
    from aigi.methods.univfd import UnivFDProbe

    folder = tmp_path_factory.mktemp("probe")
    UnivFDProbe("random:tiny-clip", embed_dim=16).save(folder)
    return folder


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _detect(paths, probe, out, **kw):
    return list(aigi.detect([Path(p) for p in paths], probe, out=out, **kw))


def _jsonl(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_torn_csv_tail_is_cut_and_rescored(images, probe, tmp_path):
    out = tmp_path / "r.csv"
    files = sorted(images.iterdir())
    _detect(files[:2], probe, out)
    text = out.read_text()
    out.write_text(text[: text.rindex(",") - 3])  # the run was killed mid-row: `…b.png,0.4`
    scored = _detect(files, probe, out)
    assert sorted(Path(p.path).name for p in scored) == ["b.png", "c.png"]
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [Path(r["path"]).name for r in rows] == ["a.png", "b.png", "c.png"]
    assert all(0 <= float(r["prob_fake"]) <= 1 for r in rows)


def test_torn_jsonl_lines_never_stay_in_the_file(images, probe, tmp_path):
    out = tmp_path / "r.jsonl"
    files = sorted(images.iterdir())
    _detect(files[:1], probe, out)
    good = out.read_text()
    out.write_text(good + '{"path": "' + str(files[1]) + '", "prob_fa\n' + good.replace("a.png", "zz.png") + '{"pa')
    _detect(files, probe, out)
    records = _jsonl(out)  # every line parses: the torn ones were cut
    names = [Path(r["path"]).name for r in records]
    assert sorted(names) == ["a.png", "b.png", "c.png", "zz.png"] and len(names) == len(set(names))


def test_retry_errors_leaves_one_record_per_image(images, probe, tmp_path):
    out = tmp_path / "r.jsonl"
    bad = images / "d.png"
    bad.write_bytes(b"not yet an image")
    _detect(sorted(images.iterdir()), probe, out)
    assert _jsonl(out)[-1]["error"]
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(bad, format="PNG")  # fixed meanwhile
    _detect(sorted(images.iterdir()), probe, out, retry_errors=True)
    records = _jsonl(out)
    by_name = {}
    for r in records:
        by_name.setdefault(Path(r["path"]).name, []).append(r)
    assert sorted(by_name) == ["a.png", "b.png", "c.png", "d.png"]
    assert all(len(v) == 1 for v in by_name.values())
    assert by_name["d.png"][0]["error"] is None and by_name["d.png"][0]["prob_fake"] is not None


def test_resume_matches_paths_however_they_are_spelt(images, probe, tmp_path, monkeypatch):
    out = tmp_path / "r.jsonl"
    monkeypatch.chdir(images.parent)
    _detect(["in/a.png", "in/b.png"], probe, out)
    again = _detect([images / "a.png", images / "b.png", images / "c.png"], probe, out)
    assert [Path(p.path).name for p in again] == ["c.png"]


@pytest.mark.parametrize("name, content", [
    ("config.json", '{\n  "detector": "univfd"\n}\n'),
    ("other.jsonl", '{"file": "x.jpg", "score": 1}\n'),
    ("table.csv", "name,score\nx.jpg,1\n"),
])
def test_a_foreign_out_file_is_refused_and_left_untouched(images, probe, tmp_path, name, content):
    out = tmp_path / name
    out.write_text(content)
    with pytest.raises(InputError, match="not an aigi results file"):
        _detect(sorted(images.iterdir()), probe, out)
    assert out.read_text() == content
    res = runner.invoke(app, ["detect", str(images), "-d", str(probe), "-o", str(out)])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and name in res.output


def test_two_runs_cannot_share_a_results_file(images, probe, tmp_path):
    out = tmp_path / "r.jsonl"
    with exclusive(out, "detect"):
        with pytest.raises(InputError, match="already in use"):
            _detect(sorted(images.iterdir()), probe, out)
    assert len(_detect(sorted(images.iterdir()), probe, out)) == 3  # the lock went with its holder


def test_two_trainings_cannot_share_a_run_folder(tiny_data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    recipe = {"detector": "univfd", "backbone": "random:tiny-clip", "data": {"train": str(tiny_data / "train")},
              "train": {"epochs": 1}, "output": str(run)}
    with exclusive(run, "train"):
        with pytest.raises(InputError, match="already in use"):
            aigi.train(recipe)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_a_named_pipe_gets_a_record_not_a_hang(images, probe, tmp_path):
    os.mkfifo(images / "pipe.jpg")
    signal.signal(signal.SIGALRM, lambda *a: pytest.fail("reading the pipe blocked"))
    signal.alarm(60)
    try:
        preds = _detect(aigi.find_images([images])[0], probe, tmp_path / "r.jsonl")
    finally:
        signal.alarm(0)
    pipe = next(p for p in preds if p.path.endswith("pipe.jpg"))
    assert pipe.prob_fake is None and "not a regular file" in pipe.error
    assert sum(p.error is None for p in preds) == 3


def test_folders_are_read_by_content_and_skips_are_counted(images, probe, tmp_path):
    (images / "photo").write_bytes((images / "a.png").read_bytes())  # an image without an extension
    (images / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    (images / "notes.txt").write_text("not an image")
    (images / ".thumb.png").write_bytes((images / "a.png").read_bytes())
    files, problems, skipped = aigi.find_images([images])
    assert sorted(p.name for p in files) == ["a.png", "b.png", "c.png", "phone.heic", "photo"]
    assert skipped == {"hidden": 1, "not images": 1} and problems == []
    preds = {Path(p.path).name: p for p in _detect(files, probe, None)}
    assert preds["photo"].error is None and "HEIF" in preds["phone.heic"].error
    res = runner.invoke(app, ["detect", str(images), "-d", str(probe)])
    assert res.exit_code == 0 and "skipped in folders: 1 hidden, 1 not images" in res.output


def test_pillow_warnings_name_the_file(tmp_path, monkeypatch, caplog):
    import warnings

    from aigi.data.io import ImageReadError, read_image

    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 pixels: Pillow warns, aigi refuses
    with warnings.catch_warnings(record=True) as leaked, caplog.at_level("WARNING", logger="aigi"):
        warnings.simplefilter("always")
        with pytest.raises(ImageReadError, match="decompression bomb"):
            read_image(path)
    assert not [w for w in leaked if issubclass(w.category, Image.DecompressionBombWarning)]
    assert any(str(path) in r.getMessage() and "DOS attack" in r.getMessage() for r in caplog.records)


def test_the_cli_log_handler_leaves_records_to_the_host_program():
    """The CLI prints aigi's notes itself, but a program (or test run) that called it in-process
    still receives every later record through its own root handlers."""
    import logging

    assert CliRunner().invoke(app, ["datasets", "suites"]).exit_code == 0
    assert logging.getLogger("aigi").propagate


def test_the_hostile_corpus_gets_one_clear_record_per_file(hostile_corpus, probe, tmp_path):
    """Every file of the corpus ends with exactly the record it deserves, or is counted as skipped;
    the run finishes, prints no traceback and a rerun scores nothing."""
    root, expect = hostile_corpus
    out = tmp_path / "r.jsonl"
    res = runner.invoke(app, ["detect", str(root), "-d", str(probe), "-o", str(out), "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    records = {Path(r["path"]).name: r for r in _jsonl(out)}
    assert sorted(records) == sorted(k for k, v in expect.items() if v != "skipped")
    for name, want in expect.items():
        if want == "skipped":
            continue
        rec = records[name]
        if want:
            assert rec["prob_fake"] is None and want in rec["error"], (name, rec)
        else:
            assert rec["error"] is None and 0 <= rec["prob_fake"] <= 1, (name, rec)
    assert "skipped in folders: 1 hidden, 1 not images" in res.output and "Traceback" not in res.output
    again = runner.invoke(app, ["detect", str(root), "-d", str(probe), "-o", str(out)])
    assert again.exit_code == 0 and "0 scored now" in again.output


def test_the_next_batch_is_read_while_this_one_is_scored(probe, tmp_path):
    """aigi.scoring pipelines: the worker prepares batch k+1 while the model scores batch k, and the
    records still come out in input order."""
    import threading

    from aigi.detectors.store import load_detector
    from aigi.scoring import run_detect

    files = []
    for i in range(6):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((40, 40, 3), 30 * i, np.uint8)).save(files[-1])
    det = load_detector(probe)
    second_prepared = threading.Event()
    overlapped = []
    prepare, score = det.prepare_batch, det.score_batch

    def watched_prepare(items, names=None):
        out = prepare(items, names)
        if str(files[2]) in items:  # the second batch
            second_prepared.set()
        return out

    def watched_score(batch):
        if str(files[0]) in batch.names:  # scoring the first batch: the second is being prepared meanwhile
            overlapped.append(second_prepared.wait(timeout=30))
        return score(batch)

    det.prepare_batch, det.score_batch = watched_prepare, watched_score
    preds = list(run_detect(det, files, batch_size=2))
    assert overlapped == [True]
    assert [p.path for p in preds] == [str(f) for f in files]
    alone = load_detector(probe).predict([str(f) for f in files])
    assert [p.prob_fake for p in preds] == pytest.approx([p.prob_fake for p in alone], abs=1e-6)


def test_detect_reads_a_stream_of_paths_in_chunks(probe, tmp_path, monkeypatch):
    """`aigi detect -` scores paths from stdin as they come (chunk by chunk, one model load), resumes
    like a list, and the API takes any iterable (a generator is consumed lazily)."""
    import aigi.api
    import aigi.scoring

    files = []
    for i in range(5):
        files.append(tmp_path / f"s{i}.png")
        Image.fromarray(np.full((36, 36, 3), 40 * i, np.uint8)).save(files[-1])
    monkeypatch.setattr(aigi.scoring, "STREAM_CHUNK", 2)
    loads = []
    real_load = aigi.api._detector
    monkeypatch.setattr(aigi.api, "_detector", lambda *a: loads.append(1) or real_load(*a))
    out = tmp_path / "stream.jsonl"
    pulled = []

    def lines():
        for f in files:
            pulled.append(f)
            yield str(f)

    stream = aigi.detect(lines(), probe, out=out)
    first = next(stream)
    assert first.path == str(files[0]) and len(pulled) == 2  # only the first chunk was read
    assert len([first, *stream]) == 5 and len(loads) == 1
    res = runner.invoke(app, ["detect", "-", "-d", str(probe), "-o", str(out)],
                        input="\n".join(str(f) for f in files) + "\n\n")
    assert res.exit_code == 0, res.output
    assert "0 scored now" in res.output  # all five were already in the file
    assert len(out.read_text().splitlines()) == 5
