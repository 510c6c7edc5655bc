"""Operating points: thresholds that flag at most a share of real photos, stored by training,
set on one's own reals, and used by detect, eval, the Ray engine and the service."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import aigi
from aigi.detectors.operating import (
    operating_points,
    parse_budget,
    threshold_at_fpr,
    threshold_for,
)
from aigi.errors import InputError

from .conftest import write_splits


@pytest.mark.parametrize("seed", range(6))
def test_the_threshold_is_the_lowest_that_keeps_within_the_budget(seed):
    rng = np.random.default_rng(seed)
    reals = rng.random(int(rng.integers(5, 300)))
    reals[rng.random(len(reals)) < 0.3] = 0.5  # ties, flagged or passed together
    for budget in (0.0, 0.01, 0.05, 0.1, 0.37, 0.9):
        t = threshold_at_fpr(reals, budget)
        assert (reals >= t).mean() <= budget + 1e-12
        below = reals[reals < t]
        if len(below):  # the next real down would be one too many
            assert (reals >= below.max()).mean() > budget


def test_thresholds_fall_between_scores_and_a_zero_budget_passes_every_real():
    reals = [0.1, 0.2, 0.3, 0.4]
    assert threshold_at_fpr(reals, 0.25) == pytest.approx(0.35)  # one of four may be flagged
    assert threshold_at_fpr(reals, 0.0) > 0.4
    with pytest.raises(ValueError, match="no real images"):
        threshold_at_fpr([], 0.1)


def test_the_table_skips_budgets_finer_than_one_real_and_knows_reals_only_sets():
    probs = list(np.linspace(0, 1, 50))
    table = operating_points([0] * 50, probs, "my photos")
    assert [p["max_fpr"] for p in table["points"]] == [0.02, 0.05, 0.1, 0.2]  # 1 % of 50 is half an image
    assert all(p["tpr"] is None and p["fpr"] <= p["max_fpr"] for p in table["points"])
    labelled = operating_points([0, 0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4, 0.9, 0.95, 0.35], "val")
    assert labelled["points"][-1] == {"max_fpr": 0.2, "threshold": pytest.approx(0.65), "fpr": 0.2, "tpr": 0.5}
    assert operating_points([1, 1], [0.2, 0.3], "fakes only")["points"] == []  # training stores it; no budget


@pytest.mark.parametrize("text,value", [("1%", 0.01), ("0.05", 0.05), (" 12.5% ", 0.125), (0.2, 0.2)])
def test_budgets_read_as_shares_or_percentages(text, value):
    assert parse_budget(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["one percent", "0", "100%", "1.5", "-2%"])
def test_a_bad_budget_is_a_one_line_error(text):
    with pytest.raises(InputError, match="false-positive budget"):
        parse_budget(text)


def _config() -> dict:
    return {"threshold": 0.5, "metadata": {"operating_points": operating_points([0] * 100, list(np.linspace(0, 0.99, 100)),
                                                                                "val")}}


def test_a_budget_takes_the_largest_stored_point_within_it():
    config = _config()
    assert threshold_for(config, "det") == 0.5
    assert threshold_for(config, "det", threshold=0.7) == 0.7
    at_2 = threshold_for(config, "det", max_fpr=0.02)  # 3 %: between the 2 % and 5 % points, never the looser
    assert threshold_for(config, "det", max_fpr="3%") == at_2 < threshold_for(config, "det", max_fpr="1%")
    with pytest.raises(InputError, match=r"finest stored budget is 1\.0%"):
        threshold_for(config, "det", max_fpr="0.5%")  # 100 reals cannot set a 0.5 % point
    with pytest.raises(InputError, match="not both"):
        threshold_for(config, "det", threshold=0.5, max_fpr=0.1)
    with pytest.raises(InputError, match="aigi operating-points det --reals FOLDER -o OUT"):
        threshold_for({"threshold": 0.5, "metadata": {}}, "det", max_fpr=0.1)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny probe whose validation split has 40 reals: points at 5, 10 and 20 %."""
    root = write_splits(tmp_path_factory.mktemp("op-data"), val=40, test=12)
    out = root / "run"
    aigi.train({"detector": "univfd", "backbone": "random:tiny-clip@0", "output": str(out),
                "data": {"train": str(root / "train"), "val": str(root / "val")}, "train": {"epochs": 5, "batch_size": 8}})
    return out


def test_training_stores_points_that_hold_on_its_validation_split(run):
    table = aigi.operating_points(run)
    assert table["source"] == "the validation split" and (table["n_real"], table["n_fake"]) == (40, 40)
    assert [p["max_fpr"] for p in table["points"]] == [0.05, 0.1, 0.2]
    val = [json.loads(json.dumps(r)) for r in _csv(run / "val_predictions.csv")]
    reals = np.array([float(r["prob_fake"]) for r in val if r["label"] == "0"])
    for p in table["points"]:
        assert (reals >= p["threshold"]).mean() == pytest.approx(p["fpr"]) and p["fpr"] <= p["max_fpr"]


def _csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_detect_at_a_budget_names_the_threshold_in_every_record(run, tmp_path):
    files = sorted((run.parent / "test").rglob("*.png"))
    t = threshold_for(aigi.detector_info(run), "run", max_fpr="10%")
    out = tmp_path / "r.jsonl"
    preds = list(aigi.detect(files, run, out=out, max_fpr="10%"))
    assert all(p.verdict == ("fake" if p.prob_fake >= t else "real") for p in preds)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == len(files) and {r["threshold"] for r in records} == {t}
    det = aigi.load_detector(run)
    own = det.threshold
    given = list(aigi.detect(files[:4], det, threshold=0.999))
    assert {p.verdict for p in given} == {"real"} and det.threshold == own  # the caller's detector is left as it was
    with pytest.raises(InputError, match="finest stored budget"):
        next(aigi.detect(files, run, max_fpr="1%"))


def test_points_set_on_ones_own_reals_and_a_shipped_detector_stays_untouched(run, tmp_path):
    reals = run.parent / "test" / "gen_a" / "0_real"
    table = aigi.operating_points(run, reals=reals, out=tmp_path / "mine")
    assert table["n_real"] == 12 and table["n_fake"] == 0 and [p["max_fpr"] for p in table["points"]] == [0.1, 0.2]
    assert aigi.operating_points(tmp_path / "mine") == table
    assert aigi.operating_points(run)["n_real"] == 40  # the run itself unchanged
    with pytest.raises(InputError, match="shipped detector.*--out"):
        aigi.operating_points("univfd-cifake", reals=reals)
    with pytest.raises(InputError, match="not both"):
        aigi.operating_points(run, data=run.parent / "val", reals=reals, out=tmp_path / "x")


def test_eval_measures_each_stored_point_on_the_test_data(run, tmp_path):
    result = aigi.evaluate(run, run.parent / "test", out=tmp_path / "ev")
    assert [p["max_fpr"] for p in result.operating] == [0.05, 0.1, 0.2]
    labels, probs = result.scores()
    reals = np.array([p for y, p in zip(labels, probs) if y == 0])
    fakes = np.array([p for y, p in zip(labels, probs) if y == 1])
    for point in result.operating:
        here = point["measured"]["all"]
        assert here["fpr"] == pytest.approx((reals >= point["threshold"]).mean(), abs=1e-6)
        assert here["tpr"] == pytest.approx((fakes >= point["threshold"]).mean(), abs=1e-6)
        assert set(point["measured"]) == {"all", "gen_a", "gen_b"}
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["operating_points"][0]["threshold"] == result.operating[0]["threshold"]
    assert "operating points" in (tmp_path / "ev" / "metrics.txt").read_text()


def test_the_cli_lists_sets_and_uses_points(run, tmp_path):
    def aigi_cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "aigi", *args], capture_output=True, text=True)

    listed = aigi_cli("operating-points", str(run))
    assert listed.returncode == 0 and "40 reals, 40 fakes" in listed.stdout and "10.0%" in listed.stdout
    saved = aigi_cli("operating-points", str(run), "--reals", str(run.parent / "val" / "0_real"), "-o", str(tmp_path / "d"))
    assert saved.returncode == 0 and "40 reals, 0 fakes" in saved.stdout
    assert f"aigi detect -d {tmp_path / 'd'} --max-fpr 5.0%" in saved.stdout
    scored = aigi_cli("detect", str(run.parent / "test" / "gen_a"), "-d", str(run), "--max-fpr", "20%")
    t = threshold_for(aigi.detector_info(run), "run", max_fpr=0.2)
    assert scored.returncode == 0 and f"(threshold {t:.3f})" in scored.stderr
    bad = aigi_cli("detect", str(run.parent / "test"), "-d", str(run), "--max-fpr", "0.1%")
    assert bad.returncode != 0 and "finest stored budget is 5.0%" in bad.stderr and "Traceback" not in bad.stderr


def test_too_few_reals_for_any_budget_is_refused_where_a_user_asks(run, tmp_path):
    from aigi.detectors.operating import require_points

    with pytest.raises(InputError, match="four: 4 real images are too few for any budget \\(a 20% one needs 5\\)"):
        require_points(operating_points([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], "four"))
    few = tmp_path / "few"
    few.mkdir()
    for f in sorted((run.parent / "val" / "0_real").glob("*.png"))[:3]:
        (few / f.name).write_bytes(f.read_bytes())
    with pytest.raises(InputError, match="3 real images are too few"):
        aigi.operating_points(run, reals=few, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing saved


def test_the_service_answers_at_its_own_budget_and_at_a_requests(run):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from fastapi.testclient import TestClient

    from aigi.serve.app import create_app
    from aigi.serve.settings import ServeSettings

    info = aigi.detector_info(run)
    at_20 = threshold_for(info, "run", max_fpr=0.2)
    at_5 = threshold_for(info, "run", max_fpr=0.05)
    image = next((run.parent / "test" / "gen_a" / "1_fake").glob("*.png")).read_bytes()
    with TestClient(create_app(ServeSettings(detector=str(run), threshold=at_20))) as client:
        listed = client.get("/v1/detectors").json()["detectors"][0]
        assert listed["threshold"] == at_20 and listed["operating_points"]["n_real"] == 40
        own = client.post("/v1/detect", files={"file": ("a.png", image, "image/png")}).json()
        assert own["threshold"] == at_20 and own["results"][0]["threshold"] == at_20
        asked = client.post("/v1/detect?max_fpr=5%25", files={"file": ("a.png", image, "image/png")}).json()
        p = asked["results"][0]["prob_fake"]
        assert asked["threshold"] == at_5 and asked["results"][0]["verdict"] == ("fake" if p >= at_5 else "real")
        never = client.post("/v1/detect?threshold=1.01", files={"file": ("a.png", image, "image/png")}).json()
        assert never["results"][0]["verdict"] == "real"
        for query, cause in (("max_fpr=0.1%25", "finest stored budget"), ("threshold=high", "not a number"),
                             ("threshold=0.5&max_fpr=5%25", "not both")):
            bad = client.post(f"/v1/detect?{query}", files={"file": ("a.png", image, "image/png")})
            assert bad.status_code == 400 and cause in bad.json()["error"]["message"]


def test_holdout_reals_gives_each_subset_its_share_and_keeps_every_fake_for_the_test(run, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("holdout_reals", Path(__file__).parents[1] / "scripts" / "holdout_reals.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main([str(run.parent / "test"), "--out", str(tmp_path), "--fraction", "0.25", "--seed", "3"])
    chosen, rest = _csv(tmp_path / "set.csv"), _csv(tmp_path / "test.csv")
    assert {r["label"] for r in chosen} == {"0"} and len(chosen) == 6  # 3 of each subset's 12 reals
    assert sorted(r["subset"] for r in chosen) == ["gen_a"] * 3 + ["gen_b"] * 3
    assert not {r["path"] for r in chosen} & {r["path"] for r in rest} and len(rest) == 48 - 6
    assert sum(r["label"] == "1" for r in rest) == 24
    table = aigi.operating_points(run, data=tmp_path / "set.csv", out=tmp_path / "d")
    assert table["n_real"] == 6 and table["source"] == str(tmp_path / "set.csv")


def test_serve_refuses_a_budget_it_cannot_meet_before_starting(run):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    res = subprocess.run([sys.executable, "-m", "aigi", "serve", "-d", str(run), "--max-fpr", "1%", "--port", "1"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "finest stored budget is 5.0%" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("name,source", [("photo-b16", "out-of-bag validation votes"),
                                         ("photo-b16-fast", "out-of-bag validation votes"),
                                         ("univfd-cifake", "../shared/data/cifake/val")])
def test_every_shipped_detector_carries_points_set_where_its_threshold_was(name, source):
    from aigi.detectors.operating import BUDGETS

    table = aigi.operating_points(name)
    kept = [b for b in BUDGETS if b * table["n_real"] >= 1]  # a budget finer than one real is not stored
    assert table["source"] == source and [p["max_fpr"] for p in table["points"]] == kept
    assert table["n_real"] >= 500 and [b for b in kept if b > 0.001] == [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
    assert (0.001 in kept) == (table["n_real"] >= 1000)  # photo-b16's 1,140 out-of-bag reals reach 0.1 %
    thresholds = [p["threshold"] for p in table["points"]]
    assert thresholds == sorted(thresholds, reverse=True)  # a looser budget, a lower threshold
    assert all(p["fpr"] <= p["max_fpr"] and 0 < p["tpr"] <= 1 for p in table["points"])
