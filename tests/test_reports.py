"""Comparing detectors, robustness sweeps, and the reports they write."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from aigi.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_data):
    root = tmp_path_factory.mktemp("runs")
    runs = []
    for det, extra in (("univfd", {"train": {"epochs": 40, "lr": 0.01}}), ("univfd-knn", {"params": {"k": 3}})):
        recipe = root / f"{det}.yaml"
        recipe.write_text(yaml.safe_dump({"detector": det, "backbone": "random:tiny-clip",
                                          "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
                                          "output": str(root / det), **extra}))
        res = runner.invoke(app, ["train", str(recipe)])
        assert res.exit_code == 0, res.output
        runs.append(root / det)
    return runs


def test_eval_compares_detectors_and_writes_every_report(two_runs, tiny_data, tmp_path):
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["eval", "-d", str(two_runs[0]), "-d", str(two_runs[1]), "--data",
                              str(tiny_data / "test"), "-o", str(out), "--bootstrap", "50"])
    assert res.exit_code == 0, res.output
    assert "== univfd" in res.output and "== univfd-knn" in res.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["metrics"]) == {"univfd", "univfd-knn"}
    assert report["metrics"]["univfd"]["all"]["ap_ci"][0] <= report["metrics"]["univfd"]["all"]["ap"]
    mean = report["metrics"]["univfd"]["mean"]  # CIs of the subset average too
    assert mean["ap_ci"][0] <= mean["ap"] <= mean["ap_ci"][1]
    for sub in ("univfd", "univfd-knn"):
        assert (out / sub / "metrics.json").is_file() and (out / sub / "predictions.csv").is_file()
    with open(out / "report.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["detector"] for r in rows} == {"univfd", "univfd-knn"}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "univfd-knn" in html and "oracle" in html
    assert "![roc](plots/roc.png)" in (out / "report.md").read_text()


def test_robustness_sweep_report(two_runs, tiny_data, tmp_path):
    out = tmp_path / "rob"
    res = runner.invoke(app, ["robustness", "-d", str(two_runs[0]), "--data", str(tiny_data / "test"),
                              "--ops", "jpeg,gaussian_blur", "--severities", "0.5,1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    rows = [r for r in report["robustness"]["univfd"] if r["subset"] == "all"]
    assert {(r["op"], r["severity"]) for r in rows} == {(op, s) for op in ("jpeg", "gaussian_blur") for s in (0.0, 0.5, 1.0)}
    clean = [r for r in rows if r["severity"] == 0.0]
    assert clean[0]["ap"] == clean[1]["ap"]  # one clean run is every curve's reference
    assert (out / "plots" / "robustness_ap.png").stat().st_size > 0
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 5


def test_robustness_features_are_cached(two_runs, tiny_data, tmp_path, monkeypatch):
    from aigi.api import load_detector
    from aigi.data.datasets import load_dataset
    from aigi.eval.robustness import sweep

    det = load_detector(two_runs[0])
    ds = load_dataset(tiny_data / "test")
    calls = {"n": 0}
    hook = det.backbone.model.vision_model.embeddings.register_forward_pre_hook(
        lambda m, a: calls.__setitem__("n", calls["n"] + a[0].shape[0]))
    first, _ = sweep(det, ds, ["resize"], [0.5])
    n_first = calls["n"]
    second, _ = sweep(det, ds, ["resize"], [0.5])
    hook.remove()
    assert n_first == 2 * len(ds) and calls["n"] == n_first  # clean + degraded once, then all from cache
    assert [r["ap"] for r in first] == [r["ap"] for r in second]


def test_degrade_command(tmp_path):
    src = Path(__file__).resolve().parents[1] / "examples" / "cifake" / "real_01.jpg"
    out = tmp_path / "d.png"
    res = runner.invoke(app, ["degrade", str(src), str(out), "--ops", "jpeg:0.8,gaussian_blur:0.2"])
    assert res.exit_code == 0, res.output
    assert out.is_file()
    res = runner.invoke(app, ["degrade", str(src), str(out), "--ops", "jpeg"])
    assert res.exit_code == 2 and "name:severity" in res.output
    res = runner.invoke(app, ["degrade", "--list"])
    assert "gaussian_blur" in res.output and "quality 95" in res.output


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(two_runs, tiny_data, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["eval", "-d", str(two_runs[0]), "--data", str(tiny_data / "test"), "-o", str(out),
                              "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600",
                    f"--screenshot={shot}", (out / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 1600)
    colours = img.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50, "the page rendered as a blank image"
