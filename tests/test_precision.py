"""Inference precision: bf16 autocast and int8 dynamic quantisation score close to fp32, say so
in every record, and a wrong name fails before anything loads."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import aigi
from aigi.cli import app


@pytest.fixture(scope="module")
def probe(tmp_path_factory, tiny_data):
    recipe = {"detector": "univfd", "backbone": "random:tiny-clip", "output": str(tmp_path_factory.mktemp("p") / "run"),
              "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
              "train": {"epochs": 40, "lr": 0.01, "batch_size": 16}}
    return aigi.train(recipe, echo=None)


def _scores(run, files, precision):
    return np.array([p.prob_fake for p in aigi.detect(files, run, precision=precision)])


@pytest.mark.parametrize("precision, tolerance", [("bf16", 0.05), ("int8", 0.1)])
def test_reduced_precision_scores_close_to_fp32(probe, tiny_data, precision, tolerance):
    files = sorted(str(p) for p in (tiny_data / "test").rglob("*.png"))
    ref, got = _scores(probe, files, "fp32"), _scores(probe, files, precision)
    assert np.abs(ref - got).max() < tolerance
    labels = np.array(["1_fake" in f for f in files])
    assert ((got >= 0.5) == labels).mean() >= 0.9  # still separates the tiny classes


def test_int8_quantises_the_towers_linear_layers(probe):
    det = aigi.load_detector(probe, precision="int8")
    assert not any(type(m) is torch.nn.Linear for m in det.backbone.modules())
    quantised = [m for m in det.backbone.modules() if "quantized" in type(m).__module__]
    assert len(quantised) >= 4 * 6  # 4 blocks × (q, k, v, out, fc1, fc2)
    assert det.precision == "int8"


def test_the_precision_is_recorded_and_checked(probe, tiny_data, tmp_path):
    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(app, ["detect", str(tiny_data / "test" / "gen_a"), "-d", str(probe), "-o", str(out),
                                   "--precision", "bf16"])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 16 and all(r["precision"] == "bf16" for r in records)
    plain = tmp_path / "plain.jsonl"
    CliRunner().invoke(app, ["detect", str(tiny_data / "test" / "gen_a"), "-d", str(probe), "-o", str(plain)])
    assert "precision" not in json.loads(plain.read_text().splitlines()[0])
    res = CliRunner().invoke(app, ["detect", str(tiny_data / "test"), "-d", str(probe), "--precision", "fp8"])
    assert res.exit_code == 2 and "unknown precision 'fp8' (valid: fp32, bf16, int8, auto)" in res.output


def test_eval_at_reduced_precision_scores_from_pixels(probe, tiny_data):
    ref = aigi.evaluate(probe, tiny_data / "test")
    got = aigi.evaluate(probe, tiny_data / "test", precision="bf16")
    assert abs(ref.rows["all"]["auc"] - got.rows["all"]["auc"]) < 0.05
    assert not torch.is_autocast_enabled("cpu")  # nothing leaks out of the scoring call


def test_load_detector_refuses_an_unknown_precision(probe):
    from aigi.errors import InputError

    with pytest.raises(InputError, match="unknown precision 'fp16'"):
        aigi.load_detector(probe, precision="fp16")


@pytest.mark.parametrize("flags, bf16, expect", [
    ({"avx2", "avx512f", "amx_bf16", "avx512_vnni"}, True, "bf16"),   # Sapphire Rapids
    ({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}, True, "bf16"),  # Zen 4
    ({"avx2", "avx512f", "avx512_vnni"}, False, "fp32"),              # Cascade Lake: never int8 (its AUC cost)
    ({"avx2", "fma"}, False, "fp32"),                                 # AVX2-only EPYC
    ({"amx_bf16"}, False, "fp32"),                                    # the flag, but torch cannot use it
])
def test_auto_precision_follows_the_cpu_flags(probe, monkeypatch, flags, bf16, expect):
    from aigi.detectors import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    monkeypatch.setattr(precision, "native_bf16", lambda: bf16)
    det = aigi.load_detector(probe, precision="auto")
    assert det.precision == expect
    assert det.predict([]) == []
