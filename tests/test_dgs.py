"""DGS-Net: identity at init, frozen branches get no gradient, plain-LoRA
equivalence when surgery has nothing to do, inference without teacher or text."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

import aigi
from aigi.backbones import load_backbone
from aigi.cli import app
from aigi.data.io import read_image
from aigi.methods.dgs.model import DGSDetector
from aigi.methods.dgs.trainer import cached_text_embeddings, training_step

runner = CliRunner()


def _dgs(**kw) -> DGSDetector:
    torch.manual_seed(0)
    return DGSDetector("random:tiny-clip", text_backbone="random:tiny-clip-text", lora_rank=4, **kw)


def _x(n=4, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _lora(det):
    return {n: p for n, p in det.named_parameters() if "lora_" in n}


def test_untrained_lora_equals_the_frozen_tower():
    det = _dgs().eval()
    frozen = load_backbone("random:tiny-clip")
    x = _x()
    with torch.no_grad():
        assert torch.equal(det.student.encode(x).embed, frozen.encode(x).embed)
    assert all(n.endswith(("lora_A.default.weight", "lora_B.default.weight")) for n in _lora(det))
    assert len(_lora(det)) == 2 * 2 * 4  # q, v × A, B × 4 blocks


def test_teacher_and_text_get_no_gradient_and_lora_does():
    det = _dgs()
    opt = torch.optim.SGD(det.trainable_parameters(), lr=0.1)
    training_step(det, _x(), torch.tensor([0, 1, 0, 1]), det.text_embeddings(["a photo"] * 4), opt)
    assert all(p.grad is None and not p.requires_grad for p in det.teacher.parameters())
    assert all(p.grad is None and not p.requires_grad for p in det.text.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in _lora(det).values())


def test_beta_zero_and_zero_text_gradient_is_plain_lora_finetuning():
    det = _dgs(beta=0.0)
    with torch.no_grad():
        det.text_head.weight.zero_()  # a zero text head gives a zero text gradient
        for n, p in _lora(det).items():  # non-zero B so the step is not trivial
            if "lora_B" in n:
                p.normal_(std=0.05)
    plain = copy.deepcopy(det)
    x, y = _x(), torch.tensor([0.0, 1.0, 1.0, 0.0])
    training_step(det, x, y, det.text_embeddings(["a photo"] * 4), torch.optim.SGD(det.trainable_parameters(), lr=0.5))
    opt = torch.optim.SGD([p for n, p in plain.named_parameters() if "lora_" in n or n.startswith("head.")], lr=0.5)
    opt.zero_grad()
    torch.nn.functional.binary_cross_entropy_with_logits(plain(x), y).backward()
    opt.step()
    for (n, a), (_, b) in zip(_lora(det).items(), _lora(plain).items()):
        assert torch.allclose(a, b, atol=1e-6), n
    assert torch.allclose(det.head.weight, plain.head.weight, atol=1e-6)


def test_feature_distillation_ablation_pulls_toward_the_teacher():
    det = _dgs(distill="feature", feature_weight=1.0, suppress=False)
    with torch.no_grad():
        det.head.weight.zero_()  # no task gradient: only the distillation term acts
        for n, p in _lora(det).items():
            if "lora_B" in n:
                p.normal_(std=0.2)
    x = _x()
    gap = lambda: float((det.student.encode(x).embed - det.teacher.encode(x).embed).pow(2).sum())  # noqa: E731
    with torch.no_grad():
        before = gap()
    training_step(det, x, torch.tensor([0, 1, 0, 1]), det.text_embeddings(["a"] * 4),
                      torch.optim.SGD(det.trainable_parameters(), lr=0.01))
    with torch.no_grad():
        assert gap() < before


def test_train_save_and_infer_without_teacher_or_text(tiny_data, tmp_path):
    recipe = tmp_path / "dgs.yaml"
    recipe.write_text(yaml.safe_dump({
        "detector": "dgs", "backbone": "random:tiny-clip",
        "params": {"text_backbone": "random:tiny-clip-text", "lora_rank": 4},
        "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
        "train": {"epochs": 3, "lr": 3e-3, "batch_size": 8}, "output": str(tmp_path / "run")}))
    res = runner.invoke(app, ["train", str(recipe)])
    assert res.exit_code == 0, res.output
    log = (tmp_path / "run" / "train.log").read_text()
    assert "captions (prompt:a photo): 1 distinct" in log
    assert len(json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]) == 3
    det = aigi.load_detector(tmp_path / "run")
    files = sorted((tiny_data / "test").rglob("*.png"))[:3]
    preds = det.predict([str(f) for f in files])
    assert all(0 <= p.prob_fake <= 1 for p in preds)
    assert det.loaded_towers() == {"teacher": False, "text": False}


def test_ablation_recipes_build():
    from aigi.config import load_yaml

    paths = sorted((Path(__file__).resolve().parents[1] / "configs").glob("dgs*.yaml"))
    paths += sorted((Path(__file__).resolve().parents[1] / "configs" / "dgs-ablations").glob("*.yaml"))
    seen = set()
    for path in paths:
        params = load_yaml(path).get("params", {})
        det = DGSDetector("random:tiny-clip", **{**params, "text_backbone": "random:tiny-clip-text"})
        seen.add((det.suppress, det.beta, det.distill))
    assert {(True, 1.0, "gradient"), (False, 1.0, "gradient"), (True, 0.0, "gradient"), (True, 1.0, "feature")} <= seen


@pytest.mark.slow
def test_one_step_on_the_embedded_tower_with_the_true_text_architecture(embedded_backbone):
    det = DGSDetector("embedded", text_backbone="random:clip-text-b16")
    assert det.text.embed_dim == det.student.embed_dim == 512
    examples = sorted((Path(__file__).resolve().parents[1] / "examples" / "cifake").glob("*.jpg"))[:2]
    x = det.student.preprocess([read_image(p) for p in examples])
    parts = training_step(det, x, torch.tensor([0, 1]), det.text_embeddings(["a photo of a dog", "a photo"]),
                              torch.optim.AdamW(det.trainable_parameters(), lr=1e-4))
    assert all(v > 0 for v in parts.values())


def test_text_embeddings_are_cached_per_tower(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGI_CACHE_DIR", str(tmp_path))
    det = _dgs()
    calls = []
    real = det.text_embeddings
    monkeypatch.setattr(det, "text_embeddings", lambda caps: calls.append(list(caps)) or real(caps))
    first = cached_text_embeddings(det, ["a photo", "a cat", "a photo"])
    again = cached_text_embeddings(det, ["a cat", "a photo"])
    assert calls == [["a cat", "a photo"]]  # each caption encoded once, ever
    assert torch.allclose(first["a cat"], again["a cat"])
    assert torch.allclose(first["a photo"], real(["a photo"])[0], atol=1e-5)  # batch padding: float noise only
