"""Leave-one-source-out folds, the metadata shortcut audit and the `aigi loso` command."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aigi.cli import app
from aigi.data.datasets import load_dataset
from aigi.errors import InputError
from aigi.eval.loso import make_folds

from .conftest import make_image


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """Three sources with fakes (one also with reals) and two real-only sources."""
    root = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(0)
    layout = {"alpha": (6, 6), "beta": (0, 6), "gamma": (0, 6), "photos": (10, 0), "scans": (8, 0)}
    for source, (reals, fakes) in layout.items():
        for label, n, folder in ((0, reals, "0_real"), (1, fakes, "1_fake")):
            for i in range(n):
                (root / source / folder).mkdir(parents=True, exist_ok=True)
                make_image(label, rng).save(root / source / folder / f"{source}{i}.png")
    # what build-pool writes beside the images: gamma's fakes come from one named generator
    rows = ["path,label,source,generator,repo,commit,repo_path,sha256"]
    rows += [f"gamma/1_fake/gamma{i}.png,fake,gamma,gx,,,," for i in range(6)]
    (root / "pool.csv").write_text("\n".join(rows) + "\n")
    return root


def test_folds_hold_each_source_out_and_share_the_real_only_sources(pool):
    ds = load_dataset(pool, subset_depth=1)
    folds = make_folds(ds)
    assert [f.source for f in folds] == ["alpha", "beta", "gamma"]
    real_only = [str(s.path) for s in ds.samples if s.subset in ("photos", "scans")]
    tested = [str(s.path) for f in folds for s in f.test if s.subset in ("photos", "scans")]
    assert sorted(tested) == sorted(real_only)  # each real-only image is tested in exactly one fold
    for f in folds:
        assert not any(s.subset == f.source for s in f.train)
        assert {s.path for s in f.train}.isdisjoint({s.path for s in f.test})
        assert len(f.train) + len(f.test) == len(ds)
        assert f.counts()["test"]["real"] > 0 and f.counts()["test"]["fake"] == 6
    with pytest.raises(InputError, match="no fakes from source"):
        make_folds(ds, ["photos"])


def test_the_metadata_audit_scores_every_fold(pool):
    from aigi.api import audit_pool

    report = audit_pool(pool)
    assert list(report["folds"]) == ["alpha", "beta", "gamma"]
    assert all(0.0 <= f["auc"] <= 1.0 for f in report["folds"].values())
    assert report["worst_auc"] == min(f["auc"] for f in report["folds"].values())
    res = CliRunner().invoke(app, ["datasets", "audit", str(pool)])
    assert res.exit_code == 0 and "held-out source" in res.output and "worst" in res.output


def test_the_metadata_shortcut_on_an_external_set_is_trained_on_the_whole_pool(pool, tmp_path):
    from aigi.api import audit_pool

    rng = np.random.default_rng(1)
    for source, (reals, fakes) in {"paired": (5, 5), "camera": (4, 0)}.items():
        for label, n, folder in ((0, reals, "0_real"), (1, fakes, "1_fake")):
            for i in range(n):
                (tmp_path / "ext" / source / folder).mkdir(parents=True, exist_ok=True)
                make_image(label, rng).save(tmp_path / "ext" / source / folder / f"{i}.png")
    report = audit_pool(pool, tmp_path / "ext")
    assert list(report["folds"]) == ["paired"]  # a real-only source has no AUC of its own
    assert report["folds"]["paired"]["real"] == 5 and report["folds"]["paired"]["fake"] == 5
    assert report["folds"]["paired"]["auc"] > 0.9  # noisy fakes compress worse: bytes per pixel gives them away
    res = CliRunner().invoke(app, ["datasets", "audit", str(pool), "--external", str(tmp_path / "ext")])
    assert res.exit_code == 0 and "external source" in res.output and "paired" in res.output
    with pytest.raises(InputError, match="no source with both"):
        audit_pool(pool, tmp_path / "ext" / "camera")


def test_loso_trains_and_tests_each_fold(pool, tmp_path):
    recipe = tmp_path / "probe.yaml"
    recipe.write_text("detector: univfd\nbackbone: random:tiny-clip\ntrain: {epochs: 20, batch_size: 16}\n")
    out = tmp_path / "loso"
    res = CliRunner().invoke(app, ["loso", str(pool), "-r", str(recipe), "-o", str(out), "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    table = json.loads((out / "loso.json").read_text())["probe"]
    assert list(table["folds"]) == ["alpha", "beta", "gamma"]
    assert table["mean_auc"] > 0.8  # the tiny images are separable
    for source in table["folds"]:
        train = (out / "probe" / source / "train.csv").read_text()
        assert f"/{source}/" not in train  # the held-out source never reaches training
        assert (out / "probe" / source / "run" / "detector" / "config.json").is_file()
    # the shortcut baseline on the same folds, and each fold's generators
    full = json.loads((out / "loso.json").read_text())
    assert list(full["shortcut"]["folds"]) == ["alpha", "beta", "gamma"]
    assert "shortcut" in res.output and "margin" in res.output
    gens = table["folds"]["gamma"]["generators"]
    assert list(gens) == ["gx"] and gens["gx"]["fake"] == 6
    assert table["folds"]["alpha"]["generators"] == {}  # no generator named for alpha
    import csv

    from sklearn.metrics import roc_auc_score

    with open(out / "probe" / "gamma" / "eval" / "predictions.csv") as fh:
        preds = list(csv.DictReader(fh))
    labels = [int(r["label"]) for r in preds]
    assert labels.count(1) == 6  # all of gamma's fakes are gx's: its AUC is the fold's
    assert gens["gx"]["auc"] == pytest.approx(roc_auc_score(labels, [float(r["prob_fake"]) for r in preds]))


def test_the_docs_table_puts_each_folds_interval_beside_its_auc():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "loso_tables.py"
    spec = importlib.util.spec_from_file_location("loso_tables", path)
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    fold = {"real": 3, "fake": 4}
    table = {"shortcut": {"folds": {"a": {"auc": 0.5}}, "mean_auc": 0.5, "worst_auc": 0.5},
             "probe": {"folds": {"a": {**fold, "auc": 0.9, "auc_ci": [0.81, 0.97]}}, "mean_auc": 0.9, "worst_auc": 0.9},
             "other": {"folds": {"a": {**fold, "auc": 0.7, "auc_ci": None}}, "mean_auc": 0.7, "worst_auc": 0.7}}
    lines = tables.folds_table(table, ci="other").splitlines()
    assert lines[0] == "| held-out source | real | fake | probe | other | other 95 % CI | shortcut |"
    assert lines[2] == "| a | 3 | 4 | 0.900 | 0.700 | - | 0.500 |"  # no bootstrap: no interval
    assert tables.folds_table(table, ci="probe").splitlines()[2] == "| a | 3 | 4 | 0.900 | 0.810–0.970 | 0.700 | 0.500 |"


def test_the_own_reals_table_scores_a_paired_source_without_the_shared_reals(tmp_path):
    """A fold's reals hold shares of the real-only sources; `--own-reals` scores each paired source on
    its own reals and fakes alone, as `aigi eval` scores an external source."""
    import csv
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "loso_tables.py"
    spec = importlib.util.spec_from_file_location("loso_tables", path)
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    folds = {"paired": [("paired", 0, 0.2), ("paired", 0, 0.7), ("paired", 1, 0.6), ("paired", 1, 0.9),
                        ("shared", 0, 0.1), ("shared", 0, 0.05)],
             "fakes-only": [("fakes-only", 1, 0.8), ("shared", 0, 0.3)]}
    for name, rows in folds.items():
        out = tmp_path / "probe" / name / "eval"
        out.mkdir(parents=True)
        with open(out / "predictions.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "subset", "label", "prob_fake"])
            w.writerows([f"/{i}.png", sub, label, p] for i, (sub, label, p) in enumerate(rows))
    lines = tables.own_reals_table(tmp_path / "loso.json", "probe").splitlines()
    # own: reals 0.2, 0.7 against fakes 0.6, 0.9 → 3 of 4 pairs; with the shared reals 7 of 8
    assert lines[2] == "| paired | 2 | 2 | 0.750 | 0.875 |"
    assert lines[3] == "| mean | | | **0.750** | |" and len(lines) == 4  # the fakes-only fold has no own reals


def test_loso_checks_every_recipe_before_the_first_fold_and_reads_each_once(pool, tmp_path, monkeypatch):
    import aigi.api as api
    from aigi.errors import ConfigError

    good = tmp_path / "probe.yaml"
    good.write_text("detector: univfd\nbackbone: random:tiny-clip\ntrain: {epochs: 2, batch_size: 16}\n")
    bad = tmp_path / "typo.yaml"
    bad.write_text("detector: univfd\nbackbone: random:tiny-clip\ntrain: {epoch: 2}\n")
    trained = []
    monkeypatch.setattr(api, "train", lambda recipe, overrides=(): trained.append(recipe))
    with pytest.raises(ConfigError, match=r"typo\.yaml: .*train\.epoch"):
        api.loso([good, bad], pool, tmp_path / "out", bootstrap=0, shortcut=False)
    assert trained == []  # nothing ran

    monkeypatch.undo()
    real_train, seen = api.train, []

    def train_then_edit(recipe, overrides=()):  # the file changes while the run goes on
        seen.append(recipe["train"]["epochs"])
        good.write_text("detector: univfd\nbackbone: random:tiny-clip\ntrain: {epochs: 1, batch_size: 16}\n")
        return real_train(recipe, overrides)

    monkeypatch.setattr(api, "train", train_then_edit)
    api.loso([good], pool, tmp_path / "out2", sources=["alpha", "beta"], bootstrap=0, shortcut=False)
    assert seen == [2, 2]  # every fold trains the recipe as it was read at the start


def test_the_vote_of_loso_runs_averages_each_images_score_fold_by_fold(tmp_path):
    import csv
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "loso_vote.py"
    spec = importlib.util.spec_from_file_location("loso_vote", path)
    voting = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(voting)

    def run(name: str, scores: dict[str, list[float]]) -> Path:
        for fold, probs in scores.items():
            out = tmp_path / name / fold / "eval"
            out.mkdir(parents=True)
            with open(out / "predictions.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["path", "subset", "label", "prob_fake"])
                for i, p in enumerate(probs):
                    w.writerow([f"/{fold}/{i}.png", fold, int(i >= 2), p])
        return tmp_path / name

    # labels per fold: 0, 0, 1, 1; a ranks fold x half right, b ranks it right; the vote ranks it right
    a = run("a", {"x": [0.1, 0.6, 0.5, 0.9], "y": [0.2, 0.1, 0.8, 0.7]})
    b = run("b", {"x": [0.2, 0.1, 0.4, 0.3], "y": [0.9, 0.1, 0.3, 0.8]})
    alone = voting.vote([a])
    assert alone["folds"]["x"]["auc"] == pytest.approx(0.75) and alone["folds"]["y"]["auc"] == 1.0
    both = voting.vote([a, b])  # x: 0.15, 0.35, 0.45, 0.6 → 1.0; y: 0.55, 0.1, 0.55, 0.75 → 0.875
    assert both["folds"]["x"]["auc"] == 1.0 and both["folds"]["y"]["auc"] == pytest.approx(0.875)
    assert both["mean_auc"] == pytest.approx(0.9375) and both["worst_auc"] == pytest.approx(0.875)
    assert both["folds"]["x"]["real"] == 2 and both["folds"]["x"]["fake"] == 2
    assert voting.vote([a, b], [1, 0])["folds"] == alone["folds"]  # weights: b counts for nothing
    other = run("c", {"x": [0.1, 0.2, 0.3]})
    with pytest.raises(SystemExit, match="fold x: the runs were tested on different images"):
        voting.vote([a, other])

    # an `aigi eval` predictions file: its sources with both classes are the folds, a column picks an expert
    evals = tmp_path / "ext.csv"
    with open(evals, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "subset", "label", "prob_fake", "p_a", "p_b"])
        for fold, pa, pb in (("x", [0.1, 0.6, 0.5, 0.9], [0.2, 0.1, 0.4, 0.3]),
                             ("y", [0.2, 0.1, 0.8, 0.7], [0.9, 0.1, 0.3, 0.8])):
            for i, (p1, p2) in enumerate(zip(pa, pb)):
                w.writerow([f"/{fold}/{i}.png", fold, int(i >= 2), (p1 + p2) / 2, p1, p2])
        w.writerow(["/reals-only/0.png", "z", 0, 0.3, 0.3, 0.3])  # one class: not a fold
    from_file = voting.vote([f"{evals}:p_a", f"{evals}:p_b"])
    assert from_file["folds"] == both["folds"] and set(from_file["folds"]) == {"x", "y"}
    assert voting.vote([evals])["folds"] == both["folds"]  # prob_fake: the ensemble's own vote
    with pytest.raises(SystemExit, match="no column 'p_c'"):
        voting.vote([f"{evals}:p_c"])

    # an ensemble's own `aigi loso` folder: a column picks an expert there too
    for fold in ("x", "y"):
        out = tmp_path / "e" / fold / "eval"
        out.mkdir(parents=True)
        with open(evals) as fh, open(out / "predictions.csv", "w") as dst:
            lines = fh.read().splitlines()
            dst.write("\n".join([lines[0], *(x for x in lines[1:] if x.startswith(f"/{fold}/"))]) + "\n")
    assert voting.vote([f"{tmp_path / 'e'}:p_a", f"{tmp_path / 'e'}:p_b"])["folds"] == both["folds"]
    assert voting.vote([tmp_path / "e"])["folds"] == both["folds"]
    with pytest.raises(SystemExit, match="no column 'p_c'"):
        voting.vote([f"{tmp_path / 'e'}:p_c"])


def test_the_feature_probe_reads_each_view_and_scores_each_external_source(tmp_path, capsys):
    """scripts/feature_probe.py on a tiny random tower: per-block CLS and patch means of every
    readable image, a probe per view, AUC per external source with both classes, and their sum."""
    import hashlib
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "feature_probe.py"
    spec = importlib.util.spec_from_file_location("feature_probe", path)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)

    rng = np.random.default_rng(0)

    def build(root: Path, sources: dict[str, tuple[int, int]]) -> Path:
        rows = ["path,label,source,generator,repo,commit,repo_path,sha256"]
        for source, (reals, fakes) in sources.items():
            for label, n, folder in ((0, reals, "0_real"), (1, fakes, "1_fake")):
                for i in range(n):
                    file = root / source / folder / f"{i}.png"
                    file.parent.mkdir(parents=True, exist_ok=True)
                    make_image(label, rng).save(file)
                    sha = hashlib.sha256(file.read_bytes()).hexdigest()
                    rows.append(f"{source}/{folder}/{i}.png,{('real', 'fake')[label]},{source},,,,,{sha}")
        (root / "pool.csv").write_text("\n".join(rows) + "\n")
        return root

    pool = build(tmp_path / "pool", {"a": (8, 8), "b": (0, 8), "c": (8, 0)})
    ext = build(tmp_path / "ext", {"x": (6, 6), "y": (5, 5), "reals": (4, 0)})
    (ext / "x" / "0_real" / "broken.png").write_bytes(b"not an image")  # listed: skipped, named
    with open(ext / "pool.csv", "a") as fh:
        fh.write("x/0_real/broken.png,real,x,,,,,00\n")
    feats = tmp_path / "feats"
    for name, root, view, copy in (("pool-crop", pool, "crop", ["--copy"]), ("pool-resize", pool, "resize", ["--copy"]),
                                   ("ext-crop", ext, "crop", []), ("ext-resize", ext, "resize", [])):
        probe.main(["extract", str(root), "--view", view, "--backbone", "random:tiny-clip", *copy,
                    "-o", str(feats / f"{name}.npz")])
    assert "skipped x/0_real/broken.png" in capsys.readouterr().out
    z = np.load(feats / "ext-crop.npz")
    assert len(z["path"]) == 26 and z["cls"].shape == z["mean"].shape and len(z["cls"]) == 26  # 6+6+5+5+4 readable
    assert not np.allclose(z["cls"], np.load(feats / "ext-resize.npz")["cls"])  # the views differ
    args = probe.parser().parse_args(["score", str(pool), str(ext), str(feats / "pool-crop.npz"),
                                      str(feats / "ext-crop.npz"), "--pair", str(feats / "pool-resize.npz"),
                                      str(feats / "ext-resize.npz"), "--late", "--blocks", "0-1"])
    table = probe._score(args)
    assert list(table) == ["pool-crop", "pool-resize", "late (sum)"]
    assert all(len(aucs) == 2 and all(0.0 <= a <= 1.0 for a in aucs) for aucs in table.values())  # x, y
    assert min(table["pool-crop"]) > 0.5  # the test images' classes differ in their pixels
