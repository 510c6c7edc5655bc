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


def test_a_bf16_tower_holds_its_matrices_in_bf16_and_scores_as_autocast_does(probe, tiny_data):
    """Autocast casts every Linear weight to bf16 anyway: holding them in bf16 changes no score."""
    from aigi.errors import InputError

    files = sorted(str(p) for p in (tiny_data / "test").rglob("*.png"))[:8]
    fp32 = aigi.load_detector(probe)
    pixels = fp32.prepare_batch(files).pixels
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        reference = fp32(pixels).float()
    held = aigi.load_detector(probe, precision="bf16")
    linear = [m for m in held.backbone.modules() if isinstance(m, torch.nn.Linear)]
    norms = [m for m in held.backbone.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert linear and all(m.weight.dtype == torch.bfloat16 for m in linear)
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)
    torch.testing.assert_close(torch.tensor(held._logits(pixels)), reference, rtol=0, atol=1e-6)
    with pytest.raises(InputError, match="holds its tower in bf16 now; load it again for fp32"):
        aigi.api._detector(held, precision="fp32")


def test_the_embedded_loader_reads_int8_storage_exactly(tmp_path):
    """De-quantising straight into the final tensor gives the values of the reference formula."""
    from safetensors.torch import save_file

    from aigi.backbones import embedded

    g = torch.Generator().manual_seed(0)
    q = torch.randint(-128, 128, (6, 4), generator=g, dtype=torch.int8)  # [in, out], as stored
    zp = torch.randint(-3, 3, (4,), generator=g, dtype=torch.int8)
    scale = torch.rand(4, generator=g) / 50
    save_file({"enc.fc.weight.q": q, "enc.fc.weight.zero_point": zp, "enc.fc.weight.scale": scale,
               "enc.norm.weight": torch.ones(6)}, str(tmp_path / "model.safetensors"),
              metadata={"storage": embedded.STORAGE})
    expected = ((q.numpy().astype(np.float32) - zp.numpy().astype(np.float32)[None, :]) * scale.numpy()[None, :]).T
    state = embedded.load_state_dict(tmp_path)
    assert np.array_equal(state["enc.fc.weight"].numpy(), expected)
    half = embedded.load_state_dict(tmp_path, torch.bfloat16)
    assert half["enc.fc.weight"].dtype == torch.bfloat16 and half["enc.norm.weight"].dtype == torch.float32
    assert torch.equal(half["enc.fc.weight"], torch.from_numpy(np.ascontiguousarray(expected)).to(torch.bfloat16))


def test_scoring_defaults_to_auto_unless_pinned(probe, tiny_data, tmp_path, monkeypatch):
    """detect and serve take $AIGI_PRECISION, else auto; auto's choice is named in the records
    (the choice is patched here, so the test means the same on every CPU)."""
    from aigi.detectors import precision
    from aigi.errors import InputError
    from aigi.serve.settings import ServeSettings

    monkeypatch.delenv("AIGI_PRECISION")
    assert precision.default_precision() == "auto" and ServeSettings().precision == "auto"
    assert precision.default_precision("onnxruntime") == "fp32"  # an exported graph keeps its own
    monkeypatch.setattr(precision, "choose", lambda detector: "bf16")
    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(app, ["detect", str(tiny_data / "test" / "gen_a"), "-d", str(probe), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert {json.loads(line)["precision"] for line in out.read_text().splitlines()} == {"bf16"}
    monkeypatch.setenv("AIGI_PRECISION", "fp32")
    assert ServeSettings().precision == "fp32"
    assert all(p.error is None for p in aigi.detect([next((tiny_data / "val").rglob("*.png"))], probe))
    monkeypatch.setenv("AIGI_PRECISION", "fp9")
    with pytest.raises(InputError, match="AIGI_PRECISION=fp9: unknown precision"):
        list(aigi.detect([next((tiny_data / "val").rglob("*.png"))], probe))
