"""aigi export --format onnx: one graph (tower + head, LTD's early exit, calibration folded in)
that scores like the torch modules under --runtime onnxruntime."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

import aigi
from aigi.cli import app

pytest.importorskip("onnxruntime")


def _run(tmp_path_factory, tiny_data, detector: str, params: dict | None = None):
    recipe = {"detector": detector, "backbone": "random:tiny-clip", "params": params or {},
              "output": str(tmp_path_factory.mktemp(detector) / "run"), "calibration": "platt",
              "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
              "train": {"epochs": 30, "lr": 0.01, "batch_size": 16}}
    return aigi.train(recipe, echo=None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_data):
    return {"univfd": _run(tmp_path_factory, tiny_data, "univfd"),
            "ltd": _run(tmp_path_factory, tiny_data, "ltd", {"n": 2, "heads": 2})}


@pytest.mark.parametrize("method", ["univfd", "ltd"])
def test_the_graph_scores_like_the_torch_modules(runs, method, tiny_data, tmp_path):
    out = tmp_path / "onnx"
    res = CliRunner().invoke(app, ["export", str(runs[method]), "-o", str(out), "--format", "onnx"])
    assert res.exit_code == 0, res.output
    config = json.loads((out / "config.json").read_text())
    assert config["onnx"]["file"] == "model.onnx" and not config["onnx"]["int8"]
    files = sorted(str(p) for p in (tiny_data / "test").rglob("*.png"))
    labels = [int("1_fake" in f) for f in files]
    ref = aigi.load_detector(runs[method]).predict(files)
    ort = aigi.load_detector(out, runtime="onnxruntime")
    assert ort._backbone is None  # the torch tower is never loaded
    got = ort.predict(files)
    a, b = np.array([p.prob_fake for p in ref]), np.array([p.prob_fake for p in got])
    assert np.abs(a - b).max() < 1e-4  # calibration folded in: the same probabilities
    assert np.mean([p.verdict == q.verdict for p, q in zip(ref, got)]) >= 0.98
    assert abs(roc_auc_score(labels, a) - roc_auc_score(labels, b)) <= 0.005


def test_int8_graph_and_records_name_the_runtime(runs, tiny_data, tmp_path):
    out = tmp_path / "onnx8"
    aigi.export(runs["univfd"], out, format="onnx", int8=True)
    assert json.loads((out / "config.json").read_text())["onnx"]["int8"]
    results = tmp_path / "r.jsonl"
    res = CliRunner().invoke(app, ["detect", str(tiny_data / "test"), "-d", str(out), "--runtime", "onnxruntime",
                                   "-o", str(results)])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(records) == 32 and {r["runtime"] for r in records} == {"onnxruntime int8"}
    labels = [int("1_fake" in r["path"]) for r in records]
    assert roc_auc_score(labels, [r["prob_fake"] for r in records]) > 0.9  # still separates the tiny classes


def test_bad_runtime_choices_fail_before_loading(runs, tiny_data):
    res = CliRunner().invoke(app, ["detect", str(tiny_data / "test"), "-d", str(runs["univfd"]), "--runtime", "onnxruntime"])
    assert res.exit_code == 2 and "no ONNX graph; write one with: aigi export" in res.output
    res = CliRunner().invoke(app, ["detect", str(tiny_data / "test"), "-d", str(runs["univfd"]), "--runtime", "tvm"])
    assert res.exit_code == 2 and "unknown runtime 'tvm' (valid: onnxruntime, torch)" in res.output
    res = CliRunner().invoke(app, ["detect", str(tiny_data / "test"), "-d", str(runs["univfd"]), "--runtime",
                                   "onnxruntime", "--precision", "int8"])
    assert res.exit_code == 2 and "--precision is for the torch runtime" in res.output
    res = CliRunner().invoke(app, ["export", str(runs["univfd"]), "-o", "x", "--int8"])
    assert res.exit_code == 2 and "use it with --format onnx" in res.output


def test_eval_through_the_graph(runs, tiny_data, tmp_path):
    out = aigi.export(runs["ltd"], tmp_path / "ltd-onnx", format="onnx")
    ref = aigi.evaluate(runs["ltd"], tiny_data / "test").rows["all"]["auc"]
    got = aigi.evaluate(out, tiny_data / "test", runtime="onnxruntime").rows["all"]["auc"]
    assert abs(ref - got) <= 0.005


def test_the_graph_runtime_imports_no_transformers(runs, tiny_data, tmp_path):
    """Scoring through an exported graph never builds a tower: transformers (seconds of start-up) stays unloaded."""
    import subprocess
    import sys

    out = aigi.export(runs["univfd"], tmp_path / "g", format="onnx")
    image = next((tiny_data / "test").rglob("*.png"))
    code = ("import sys, aigi; det = aigi.load_detector(sys.argv[1], runtime='onnxruntime'); "
            "p = det.predict([sys.argv[2]])[0]; print(p.error is None, 'transformers' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code, str(out), str(image)], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["True", "False"]


def test_an_ensemble_on_one_tower_exports_as_one_graph_and_keeps_each_members_score(runs, tiny_data, tmp_path):
    import shutil

    from aigi.detectors.ensemble import EnsembleDetector

    ens = tmp_path / "ens"
    EnsembleDetector.from_detectors({"probe": runs["univfd"], "ltd": runs["ltd"]}, weights=[1, 3], out=ens)
    files = sorted(str(p) for p in (tiny_data / "test").rglob("*.png"))[:12]
    ref = aigi.load_detector(ens).predict(files)
    out = aigi.export(ens, tmp_path / "ens-onnx", format="onnx")
    assert (out / "members" / "ltd" / "config.json").is_file()  # the folder is still a detector
    ort = aigi.load_detector(out, runtime="onnxruntime")
    got = ort.predict(files)
    assert all(m._backbone is None for m in ort.members.values())  # the torch tower is never loaded
    for key in ("prob_fake", "p_probe", "p_ltd"):
        a = np.array([p.as_record()[key] for p in ref])
        b = np.array([p.as_record()[key] for p in got])
        assert np.abs(a - b).max() < 1e-4, key

    # members on one tower through two views (the shipped default's shape): one graph, both views stacked
    def with_view(name: str, view: str) -> Path:
        folder = tmp_path / name
        shutil.copytree(aigi.resolve_detector(runs["univfd"]), folder)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "view": view}))
        return folder

    mixed = tmp_path / "mixed"
    EnsembleDetector.from_detectors({"crop": with_view("crop", "crop"), "resize": runs["univfd"],
                                     "crop-2": with_view("crop-2", "crop")}, out=mixed)
    ref = aigi.load_detector(mixed).predict(files)
    assert [str(v) for v in aigi.load_detector(mixed).input_views()] == ["crop", "resize"]
    saved = aigi.detector_info(mixed)  # no one view to name: its config lists the members' views
    assert saved["view"] is None and saved["member_views"] == ["crop", "resize"]
    assert aigi.detector_info(mixed / "members" / "crop")["view"] == "crop"
    assert ref[0].as_record()["p_crop"] != pytest.approx(ref[0].as_record()["p_resize"])  # the views differ
    for member, source in (("crop", tmp_path / "crop"), ("resize", runs["univfd"])):  # as each scores alone
        alone = [p.prob_fake for p in aigi.load_detector(source).predict(files)]
        assert [p.as_record()[f"p_{member}"] for p in ref] == pytest.approx(alone, abs=1e-5), member
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    first, bad, last = aigi.load_detector(mixed).predict([files[0], str(broken), files[1]])
    assert bad.prob_fake is None and "broken.png" in bad.path and bad.error  # its record, the others scored
    assert (first.prob_fake, last.prob_fake) == pytest.approx((ref[0].prob_fake, ref[1].prob_fake), abs=1e-5)
    out = aigi.export(mixed, tmp_path / "mixed-onnx", format="onnx")
    assert json.loads((out / "config.json").read_text())["onnx"]["views"] == ["crop", "resize"]
    got = aigi.load_detector(out, runtime="onnxruntime").predict(files)
    for key in ("prob_fake", "p_crop", "p_resize", "p_crop-2"):  # member order kept across the two passes
        a = np.array([p.as_record()[key] for p in ref])
        b = np.array([p.as_record()[key] for p in got])
        assert np.abs(a - b).max() < 1e-4, key
    # a member that averages several crops cannot be stacked with another view: a clear refusal
    EnsembleDetector.from_detectors({"resize": runs["univfd"], "crops": with_view("multi", "multicrop:2")},
                                    out=tmp_path / "multi-ens")
    res = CliRunner().invoke(app, ["export", str(tmp_path / "multi-ens"), "-o", str(tmp_path / "m-onnx"), "--format", "onnx"])
    assert res.exit_code == 2 and "one of several crops" in res.output
    assert not (tmp_path / "m-onnx").exists()  # refused before anything is written
