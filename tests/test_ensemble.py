"""Soft-voting ensembles: the vote is the (weighted) mean, each expert's score is
kept beside it in detect and eval, and the folder is self-contained."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

import aigi
from aigi.cli import app
from aigi.detectors.ensemble import EnsembleDetector

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_data):
    root = tmp_path_factory.mktemp("ens-runs")
    out = {}
    for name, det, backbone, extra in (("clip", "univfd", "random:tiny-clip", {"train": {"epochs": 40, "lr": 0.01}}),
                                       ("siglip", "univfd", "random:tiny-siglip", {"train": {"epochs": 40, "lr": 0.01}}),
                                       ("ltd", "ltd", "random:tiny-clip", {"params": {"n": 2, "heads": 4},
                                                                            "train": {"epochs": 10, "lr": 3e-3}})):
        recipe = root / f"{name}.yaml"
        recipe.write_text(yaml.safe_dump({"detector": det, "backbone": backbone, "output": str(root / name),
                                          "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
                                          **extra}))
        res = runner.invoke(app, ["train", str(recipe)])
        assert res.exit_code == 0, res.output
        out[name] = root / name
    return out


def test_soft_vote_is_the_weighted_mean():
    det = EnsembleDetector(members=["a", "b", "c"], weights=[1, 1, 2])
    probs = {"a": torch.tensor([0.2, 0.9]), "b": torch.tensor([0.4, 0.5]), "c": torch.tensor([1.0, 0.1])}
    assert torch.allclose(det.vote(probs), torch.tensor([(0.2 + 0.4 + 2.0) / 4, (0.9 + 0.5 + 0.2) / 4]))
    plain = EnsembleDetector(members=["a", "b", "c"])
    assert torch.allclose(plain.vote(probs), (probs["a"] + probs["b"] + probs["c"]) / 3)
    with pytest.raises(ValueError, match="weights"):
        EnsembleDetector(members=["a", "b"], weights=[1.0])


def test_build_detect_and_breakdown(runs, tiny_data, tmp_path):
    out = tmp_path / "ens"
    res = runner.invoke(app, ["ensemble", "-m", f"clip={runs['clip']}", "-m", f"siglip={runs['siglip']}",
                              "-m", f"ltd={runs['ltd']}", "-w", "1", "-w", "1", "-w", "2", "-o", str(out),
                              "--val", str(tiny_data / "val")])
    assert res.exit_code == 0, res.output
    for src in runs.values():  # self-contained: the originals can go
        shutil.move(str(src), str(src) + ".moved")
    try:
        files = sorted((tiny_data / "test").rglob("*.png"))[:5]
        det = aigi.load_detector(out)
        preds = det.predict([str(f) for f in files])
        for p in preds:
            experts = [p.extra["p_clip"], p.extra["p_siglip"], p.extra["p_ltd"]]
            assert p.prob_fake == pytest.approx((experts[0] + experts[1] + 2 * experts[2]) / 4, abs=1e-6)
        single = aigi.load_detector(out / "members" / "siglip").predict([str(f) for f in files])
        assert [p.extra["p_siglip"] for p in preds] == pytest.approx([s.prob_fake for s in single], abs=1e-6)
        csv_out = tmp_path / "d.csv"
        res = runner.invoke(app, ["detect", *map(str, files), "-d", str(out), "-o", str(csv_out)])
        assert res.exit_code == 0, res.output
        with open(csv_out) as fh:
            rows = list(csv.DictReader(fh))
        assert {"p_clip", "p_siglip", "p_ltd"} <= set(rows[0]) and len(rows) == 5
        res = runner.invoke(app, ["detect", str(files[0]), "-d", str(out)])
        assert "p_ltd=" in res.output
        ev = tmp_path / "ev"
        res = runner.invoke(app, ["eval", "-d", str(out), "--data", str(tiny_data / "test"), "-o", str(ev),
                                  "--bootstrap", "0"])
        assert res.exit_code == 0, res.output
        assert "expert siglip" in res.output
        report = json.loads((ev / "metrics.json").read_text())
        assert set(report["experts"]) == {"clip", "siglip", "ltd"}
        assert "ens/ltd" in json.loads((ev / "report.json").read_text())["metrics"]
        with open(ev / "predictions.csv") as fh:
            row = next(csv.DictReader(fh))
        vote = (float(row["p_clip"]) + float(row["p_siglip"]) + 2 * float(row["p_ltd"])) / 4
        assert float(row["prob_fake"]) == pytest.approx(vote, abs=1e-5)
    finally:
        for src in runs.values():
            shutil.move(str(src) + ".moved", str(src))


@pytest.mark.slow
def test_siglip_so400m_and_clip_l14_experts_on_true_architectures(tmp_path):
    """The paper's expert backbones, random weights: build, save, ensemble, score two images."""
    from aigi.backbones import load_backbone
    from aigi.methods.univfd import UnivFDProbe

    folders = {}
    for name, spec in (("siglip", "random:siglip-so400m-patch14-384"), ("clipl14", "random:clip-vit-l14")):
        bb = load_backbone(spec).freeze()
        assert (bb.width, bb.preprocess_spec.output_size) == ((1152, 384) if name == "siglip" else (1024, 224))
        det = UnivFDProbe(backbone=spec, **UnivFDProbe.backbone_params(bb))
        det.attach_backbone(bb)
        folders[name] = det.save(tmp_path / name)
    ens = EnsembleDetector.from_detectors(folders, out=tmp_path / "ens")
    examples = sorted((Path(__file__).resolve().parents[1] / "examples" / "cifake").glob("*.jpg"))[:2]
    preds = ens.predict([str(p) for p in examples], batch_size=2)
    assert all(0 <= p.prob_fake <= 1 and set(p.extra) == {"p_siglip", "p_clipl14"} for p in preds)
    assert all(p.prob_fake == pytest.approx((p.extra["p_siglip"] + p.extra["p_clipl14"]) / 2) for p in preds)


def test_ensemble_robustness_sweep_shows_each_expert(runs, tiny_data, tmp_path):
    out = tmp_path / "ens"
    EnsembleDetector.from_detectors({"clip": runs["clip"], "ltd": runs["ltd"]}, out=out)
    res = runner.invoke(app, ["robustness", "-d", str(out), "--data", str(tiny_data / "test"), "--ops", "jpeg",
                              "--severities", "1", "-o", str(tmp_path / "rob")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "rob" / "report.json").read_text())
    assert set(report["robustness"]) == {"ens", "ens/clip", "ens/ltd"}
    vote = {r["severity"]: r["ap"] for r in report["robustness"]["ens"] if r["subset"] == "all"}
    assert set(vote) == {0.0, 1.0}
