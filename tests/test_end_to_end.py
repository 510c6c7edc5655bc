"""train → eval → detect through the command line, on a tiny random backbone."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import aigi
from aigi.cli import app
from aigi.errors import InputError

runner = CliRunner()


def _train(tmp_path: Path, data: Path, detector: str = "univfd", extra=()) -> Path:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "detector": detector, "backbone": "random:tiny-clip",
        "data": {"train": str(data / "train"), "val": str(data / "val")},
        "train": {"epochs": 60, "lr": 0.01, "batch_size": 16},
    }))
    out = tmp_path / f"run-{detector}"
    res = runner.invoke(app, ["train", str(recipe), f"output={out}", *extra])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_data):
    return _train(tmp_path_factory.mktemp("train"), tiny_data)


def test_train_writes_a_complete_run(run_dir):
    for name in ["detector/config.json", "detector/model.safetensors", "config.yaml", "metrics.json",
                 "val_predictions.csv", "train.log"]:
        assert (run_dir / name).is_file(), name
    cfg = json.loads((run_dir / "detector/config.json").read_text())
    assert cfg["detector"] == "univfd" and cfg["backbone"] == "random:tiny-clip"
    metrics = json.loads((run_dir / "metrics.json").read_text())["validation"]
    assert metrics["n"] == 16 and metrics["auc"] > 0.9
    assert cfg["threshold"] == metrics["threshold"]
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["train"]["epochs"] == 60 and resolved["train"]["weight_decay"] == 0.0  # defaults filled in


def test_eval_per_subset_and_overall(run_dir, tiny_data, tmp_path):
    out = tmp_path / "eval"
    res = runner.invoke(app, ["eval", "--detector", str(run_dir), "--data", str(tiny_data / "test"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "metrics.json").read_text())
    rows = report["metrics"]
    assert set(rows) == {"gen_a", "gen_b", "all", "mean"}
    assert rows["all"]["n"] == 32 and rows["gen_a"]["n_real"] == 8
    assert rows["all"]["auc"] > 0.9
    assert abs(rows["mean"]["ap"] - (rows["gen_a"]["ap"] + rows["gen_b"]["ap"]) / 2) < 1e-9
    assert report["threshold_val"] == rows["all"]["threshold"]
    with open(out / "metrics.csv") as fh:
        assert [r["subset"] for r in csv.DictReader(fh)] == ["gen_a", "gen_b", "all", "mean"]
    assert "gen_a" in res.output and "AUC" in res.output


def test_eval_from_cache_equals_eval_from_pixels(run_dir, tiny_data, tmp_path):
    outs = []
    for flag in ([], ["--no-cache"]):
        out = tmp_path / f"eval{len(flag)}"
        res = runner.invoke(app, ["eval", "-d", str(run_dir), "--data", str(tiny_data / "test"), "-o", str(out), *flag])
        assert res.exit_code == 0, res.output
        outs.append(json.loads((out / "metrics.json").read_text())["metrics"]["all"])
    assert outs[0]["ap"] == pytest.approx(outs[1]["ap"], abs=1e-6)


def test_detect_bad_files_and_resume(run_dir, tiny_data, tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    good = sorted((tiny_data / "test").rglob("*.png"))[:5]
    for i, src in enumerate(good):
        (folder / f"ok{i}.png").write_bytes(src.read_bytes())
    (folder / "truncated.png").write_bytes(good[0].read_bytes()[:50])
    (folder / "notes.jpg").write_text("this is not an image")
    out = tmp_path / "results.jsonl"
    res = runner.invoke(app, ["detect", str(folder), "-d", str(run_dir), "--out", str(out), "--batch-size", "3"])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 7
    by_name = {Path(r["path"]).name: r for r in records}
    assert by_name["truncated.png"]["error"] and by_name["truncated.png"]["prob_fake"] is None
    assert by_name["notes.jpg"]["error"] == "not a recognised image format"
    assert by_name["truncated.png"]["error"] == "truncated or corrupt image data"
    assert all(0 <= by_name[f"ok{i}.png"]["prob_fake"] <= 1 for i in range(5))
    assert "2 unreadable" in res.output

    # resume: a new file appears; only it is scored, nothing already written is lost
    (folder / "late.png").write_bytes(good[1].read_bytes())
    res2 = runner.invoke(app, ["detect", str(folder), "-d", str(run_dir), "--out", str(out)])
    assert res2.exit_code == 0, res2.output
    records2 = [json.loads(line) for line in out.read_text().splitlines()]
    assert records2[:7] == records and len(records2) == 8
    assert Path(records2[-1]["path"]).name == "late.png"
    assert "7 already in" in res2.output


def test_detect_csv_output_and_python_api_agree(run_dir, tiny_data, tmp_path):
    files = sorted((tiny_data / "test" / "gen_b").rglob("*.png"))[:4]
    out = tmp_path / "r.csv"
    res = runner.invoke(app, ["detect", *map(str, files), "-d", str(run_dir), "-o", str(out)])
    assert res.exit_code == 0, res.output
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    det = aigi.load_detector(run_dir)
    preds = det.predict([str(f) for f in files])
    assert [float(r["prob_fake"]) for r in rows] == pytest.approx([p.prob_fake for p in preds], abs=1e-5)
    assert [p.verdict for p in preds] == [("fake" if p.prob_fake >= det.threshold else "real") for p in preds]


def test_knn_variant_end_to_end(tiny_data, tmp_path):
    run = _train(tmp_path, tiny_data, detector="univfd-knn", extra=["params.k=3"])
    metrics = json.loads((run / "metrics.json").read_text())["validation"]
    assert metrics["auc"] > 0.9
    det = aigi.load_detector(run)
    assert det.k == 3 and det.bank.shape[0] == 32


def test_clear_one_line_errors(tmp_path, run_dir):
    res = runner.invoke(app, ["eval", "-d", str(run_dir), "--data", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "nowhere" in res.output and res.output.count("\n") == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("detector: nosuch\ndata: {train: x}\n")
    res = runner.invoke(app, ["train", str(bad)])
    assert res.exit_code == 2 and "error:" in res.output
    res = runner.invoke(app, ["detect", str(tmp_path / "none.png"), "-d", str(run_dir)])
    assert res.exit_code == 2 and "none.png" in res.output


def test_python_api_train_and_evaluate(tiny_data, tmp_path):
    run = aigi.train({"detector": "univfd", "backbone": "random:tiny-clip",
                      "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")}},
                     overrides=["train.epochs=40", "train.lr=1e-2", f"output={tmp_path / 'run'}"])
    result = aigi.evaluate(run, tiny_data / "test", out=tmp_path / "ev")
    assert result.rows["all"]["n"] == 32 and result.rows["all"]["auc"] > 0.9
    assert (tmp_path / "ev" / "metrics.json").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["lr"] == 0.01


@pytest.mark.parametrize("method", ["temperature", "platt"])
def test_calibrate_on_validation_improves_ece_and_is_stored(run_dir, tiny_data, tmp_path, method):
    out = tmp_path / f"cal-{method}"
    res = runner.invoke(app, ["calibrate", str(run_dir), "--data", str(tiny_data / "val"), "--method", method,
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["calibration"]["method"] == method
    before = aigi.evaluate(run_dir, tiny_data / "val").rows["all"]
    after = aigi.evaluate(out, tiny_data / "val").rows["all"]
    assert after["ece"] <= before["ece"] + 1e-9
    assert after["auc"] == pytest.approx(before["auc"])  # a monotone map keeps the ranking
    det = aigi.load_detector(out)
    assert det.calibration == cfg["calibration"]


def test_python_api_covers_every_command(run_dir, tiny_data, tmp_path):
    rows = aigi.robustness(run_dir, tiny_data / "test", ops=["jpeg"], severities=[1.0])
    assert {(r["op"], r["severity"]) for r in rows} == {("jpeg", 0.0), ("jpeg", 1.0)}
    ens = aigi.ensemble({"a": run_dir, "b": run_dir}, out=tmp_path / "ens")
    assert aigi.load_detector(tmp_path / "ens").member_names == ["a", "b"] and ens.weights == [1.0, 1.0]
    info = aigi.describe({"detector": "univfd", "backbone": "random:tiny-clip"})
    assert info["trainable"] == 17 and info["sized_with"] == "random:tiny-clip"
    assert aigi.export(run_dir, tmp_path / "exp").joinpath("config.json").is_file()
    cal = aigi.calibrate(tmp_path / "exp", tiny_data / "val", method="temperature")
    assert cal["calibration"]["method"] == "temperature"
    points = aigi.operating_points(tmp_path / "exp")  # reset on the calibrated P(fake)s: the old ones no longer hold
    assert points["source"] == str(tiny_data / "val") and points["n_real"] == 8
    with pytest.raises(InputError, match="univfd-cifake is a shipped detector"):
        aigi.calibrate("univfd-cifake", tiny_data / "val")


def test_clashing_detector_labels_take_their_parent_folder(tmp_path):
    from aigi.api import detector_labels as _unique_labels

    paths = []
    for parent in ("full-l2", "lora-crd", "lora-crd"):
        folder = tmp_path / parent / "stage1"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text("{}")
        paths.append(str(folder))
    (tmp_path / "solo" / "detector").mkdir(parents=True)
    (tmp_path / "solo" / "detector" / "config.json").write_text("{}")
    assert _unique_labels([*paths, str(tmp_path / "solo")]) == [
        "full-l2/stage1", "lora-crd/stage1#1", "lora-crd/stage1#2", "solo"]


def test_data_exclude_holds_out_images_by_content(tiny_data, tmp_path):
    """Copies of three training images under other names (the README examples, say) are never
    trained or validated on; a missing exclude path is refused before any work."""
    held = tmp_path / "held"
    held.mkdir()
    for i, src in enumerate(sorted((tiny_data / "train" / "1_fake").glob("*.png"))[:3]):
        (held / f"example {i}.png").write_bytes(src.read_bytes())
    recipe = {"detector": "univfd", "backbone": "random:tiny-clip", "output": str(tmp_path / "run"),
              "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val"), "exclude": str(held)},
              "train": {"epochs": 2}}
    run = aigi.train(recipe, echo=None)
    assert "data.exclude: 3 of 32 images of train are in" in (run / "train.log").read_text()
    counts = json.loads((run / "detector" / "config.json").read_text())["metadata"]["train_counts"]
    assert [c["fake"] for c in counts.values()] == [13] and [c["real"] for c in counts.values()] == [16]
    recipe["data"]["exclude"] = str(tmp_path / "nowhere")
    recipe["output"] = str(tmp_path / "run2")
    with pytest.raises(aigi.errors.ConfigError, match="data.exclude: .*nowhere"):
        aigi.train(recipe, echo=None)
