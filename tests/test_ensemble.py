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
        assert det.metadata["operating_points"]["source"] == str(tiny_data / "val")
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
        assert res.exit_code == 0 and "p_ltd=" not in res.output  # the vote alone, unless asked
        res = runner.invoke(app, ["detect", str(files[0]), "-d", str(out), "--experts"])
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


def test_members_on_one_frozen_tower_share_it_and_its_forward_pass(runs, tiny_data, tmp_path, monkeypatch):
    """Two frozen-tower members on one spec (UnivFD reads the embedding, LTD every block's CLS):
    the tower is loaded once and run once per batch, and each member scores as it does alone."""
    from aigi.backbones.base import VisionBackbone

    files = [str(f) for f in sorted((tiny_data / "test").rglob("*.png"))[:6]]
    alone = {n: [p.prob_fake for p in aigi.load_detector(runs[n]).predict(files)] for n in ("clip", "ltd")}
    ens = aigi.load_detector(EnsembleDetector.from_detectors({"clip": runs["clip"], "ltd": runs["ltd"]},
                                                             out=tmp_path / "ens").root)
    calls = []
    real_encode = VisionBackbone.encode

    def counted(self, pixels, *args, **kwargs):
        calls.append(len(pixels))
        return real_encode(self, pixels, *args, **kwargs)

    monkeypatch.setattr(VisionBackbone, "encode", counted)
    preds = ens.predict(files + [str(tmp_path / "missing.png")], batch_size=7)
    assert calls == [6]  # one pass for both members over the six readable images
    towers = {id(m.backbone) for m in ens.members.values()}
    assert len(towers) == 1
    bf16 = aigi.load_detector(ens.root, precision="bf16")  # the tower read straight into bf16, once
    assert len({id(m.backbone) for m in bf16.members.values()}) == 1
    assert bf16.members["ltd"]._backbone is None and bf16.members["ltd"].precision == "bf16"
    for name in ("clip", "ltd"):
        assert [p.extra[f"p_{name}"] for p in preds[:6]] == pytest.approx(alone[name], abs=1e-5)
    assert preds[6].prob_fake is None and "missing.png" in preds[6].path and preds[6].error
    siglip = EnsembleDetector.from_detectors({"clip": runs["clip"], "siglip": runs["siglip"]}, out=tmp_path / "e2")
    assert len({id(m.backbone) for m in siglip.members.values()}) == 2  # two specs: two towers
    in_memory = EnsembleDetector.from_detectors({"clip": runs["clip"], "ltd": runs["ltd"]})  # not written anywhere
    assert len({id(m.backbone) for m in in_memory.members.values()}) == 1
    one = {n: m.parameter_report() for n, m in ens.members.items()}
    shared, apart = ens.parameter_report(), siglip.parameter_report()
    assert shared["vision_tower"] == one["clip"]["vision_tower"] == one["ltd"]["vision_tower"]  # held once
    assert shared["trainable"] == one["clip"]["trainable"] + one["ltd"]["trainable"]
    assert shared["total"] == one["clip"]["total"] + one["ltd"]["total"] - one["clip"]["vision_tower"]
    size = ens.preprocess_spec.output_size
    pixels = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        both = ens(pixels)  # the bare forward: every member's logit from one pass
        assert both.shape == (3, 2)
        assert both[:, 0] == pytest.approx(ens.members["clip"](pixels).tolist(), abs=1e-5)
        assert both[:, 1] == pytest.approx(ens.members["ltd"](pixels).tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="read different towers"):
        siglip.preprocess_spec
    assert apart["vision_tower"] == sum(m.parameter_report()["vision_tower"] for m in siglip.members.values())


def test_seeds_bag_every_expert_at_consecutive_seeds_and_share_its_weight(tmp_path):
    from aigi.config import ConfigError, resolve
    from aigi.training.ensemble_recipe import expert_configs, expert_weights

    (tmp_path / "probe.yaml").write_text("detector: univfd\nbackbone: random:tiny-clip\ntrain: {seed: 5}\n")
    (tmp_path / "ens.yaml").write_text(yaml.safe_dump({
        "output": str(tmp_path / "ens"), "seeds": 3, "weights": [2, 1],
        "experts": {"a": "probe.yaml", "b": {"base": "probe.yaml", "train": {"epochs": 3}}}}))
    experts = expert_configs(resolve(tmp_path / "ens.yaml"))
    assert list(experts) == ["a-1", "a-2", "a-3", "b-1", "b-2", "b-3"]
    assert [e["train"]["seed"] for e in experts.values()] == [5, 6, 7, 5, 6, 7]
    assert experts["b-2"]["train"]["epochs"] == 3 and experts["b-2"]["output"] == str(tmp_path / "ens/experts/b-2")
    assert expert_weights(resolve(tmp_path / "ens.yaml")) == [2, 2, 2, 1, 1, 1]
    moved = expert_configs(resolve(tmp_path / "ens.yaml", ["train.seed=10"]))  # the whole bag moves
    assert [e["train"]["seed"] for e in moved.values()] == [10, 11, 12, 10, 11, 12]
    for bad in (0, "3", 1.5, True):
        with pytest.raises(ConfigError, match="seeds must be"):
            expert_configs({**resolve(tmp_path / "ens.yaml"), "seeds": bad})


def test_a_bagged_recipe_trains_heads_that_differ_and_scores_with_one_tower_pass(tiny_data, tmp_path):
    recipe = {"detector": "univfd", "backbone": "random:tiny-clip", "train": {"epochs": 5, "lr": 0.01},
              "data": {"train": str(tiny_data / "train"), "val_fraction": 0.25}}  # a split per seed
    (tmp_path / "bag.yaml").write_text(yaml.safe_dump({"output": str(tmp_path / "bag"), "seeds": 2,
                                                       "experts": {"probe": recipe}}))
    res = runner.invoke(app, ["train", str(tmp_path / "bag.yaml")])
    assert res.exit_code == 0, res.output
    det = aigi.load_detector(tmp_path / "bag" / "detector")
    assert det.member_names == ["probe-1", "probe-2"]
    heads = [m.head.weight for m in det.members.values()]
    assert not torch.allclose(heads[0], heads[1])  # two seeds, two probes
    splits = [{r["path"] for r in csv.DictReader(open(tmp_path / "bag" / "experts" / n / "val_predictions.csv"))}
              for n in det.member_names]
    assert splits[0] != splits[1]  # so the vote's threshold was tuned on both splits, each image out of bag
    validation = json.loads((tmp_path / "bag" / "metrics.json").read_text())["validation"]["ensemble"]
    assert validation["n"] == len(splits[0] | splits[1])
    points = det.metadata["operating_points"]  # set on the same out-of-bag votes as the threshold
    assert points["source"] == "out-of-bag validation votes" and points["n_real"] + points["n_fake"] == validation["n"]
    assert det.metadata["trained_on"] == str(tiny_data / "train")  # both experts say so
    preds = det.predict([str(f) for f in sorted((tiny_data / "test").rglob("*.png"))[:4]])
    assert all(p.prob_fake == pytest.approx((p.extra["p_probe-1"] + p.extra["p_probe-2"]) / 2, abs=1e-6) for p in preds)


def test_out_of_bag_votes_score_each_validation_image_by_the_experts_that_held_it_out():
    from aigi.training.ensemble_recipe import out_of_bag_votes

    tables = {"a-1": {"x": (0, 0.2), "y": (1, 0.8)}, "b-1": {"x": (0, 0.4), "y": (1, 0.6)},  # split 1: x, y
              "a-2": {"z": (1, 0.9)}, "b-2": {"z": (1, 0.5)}}                                # split 2: z
    labels, voted = out_of_bag_votes(tables, ["a-1", "b-1", "a-2", "b-2"], [1, 1, 1, 3])
    assert labels == [0, 1, 1]
    assert voted == pytest.approx([0.3, 0.7, (0.9 + 3 * 0.5) / 4])  # z: only the copies that held it out
    same = {"a": {"x": (0, 0.2)}, "b": {"x": (0, 0.6)}}  # one split: every expert votes on every image
    assert out_of_bag_votes(same, ["a", "b"], [1, 1]) == ([0], [pytest.approx(0.4)])


def test_the_shipped_list_says_what_the_default_vote_is_made_of():
    res = runner.invoke(app, ["detectors", "list"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("shipped: photo-b16"))
    # each member cuts its own view: six crop probes and three whole-picture probes
    assert "a vote of 6 × univfd-layers on embedded, view crop + 3 × univfd-layers on embedded, view resize" in line
    assert "univfd on embedded, view resize" in res.output  # univfd-cifake, one probe
    fast = next(x for x in res.output.splitlines() if x.startswith("shipped: photo-b16-fast"))
    assert "a vote of 6 × univfd-layers on embedded, view crop, threshold" in fast  # one tower pass


def test_the_fast_vote_is_the_defaults_crop_probes_byte_for_byte():
    """photo-b16-fast is photo-b16 less its whole-picture probes: the same files, so the two never drift."""
    shipped = aigi.pretrained_detectors()
    default, fast = (json.loads((shipped[n] / "config.json").read_text()) for n in ("photo-b16", "photo-b16-fast"))
    crops = [m for m in default["params"]["members"] if not m.startswith("resize-")]
    assert fast["params"]["members"] == crops and len(crops) == 6
    for member in crops:
        for file in ("config.json", "model.safetensors"):
            a = (shipped["photo-b16"] / "members" / member / file).read_bytes()
            assert a == (shipped["photo-b16-fast"] / "members" / member / file).read_bytes(), (member, file)


def test_the_shipped_votes_trained_on_every_source_of_the_all_set():
    """photo-b16 and -fast train on `build-pool --set all` plus CIFAKE (docs/data.md, "Why the external
    sources joined"): every member's recorded training split holds each of those sources, and no
    other, so a retrain on the pool alone cannot be shipped by mistake."""
    from aigi.data.pool.sources import SETS

    expected = {s.name for s in SETS["all"]} | {"cifake"}
    for name in ("photo-b16", "photo-b16-fast"):
        folder = aigi.pretrained_detectors()[name]
        for member in json.loads((folder / "config.json").read_text())["params"]["members"]:
            counts = json.loads((folder / "members" / member / "config.json").read_text())["metadata"]["train_counts"]
            assert set(counts) == expected, (name, member, sorted(set(counts) ^ expected))
            assert all(sum(c.values()) > 0 for c in counts.values()), (name, member)
