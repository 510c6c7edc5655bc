"""FeatDistill: the contrastive pieces, the expert, the two-stage trainer and its resume."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import aigi
from aigi.backbones import load_backbone
from aigi.config import ConfigError
from aigi.detectors.store import load_detector_dir
from aigi.methods.featdistill.contrastive import (
    NegativeQueue,
    ema_update,
    info_nce,
    momentum_at,
)
from aigi.methods.featdistill.distillation import (
    DISTILLATIONS,
    ContrastiveDistillation,
    PatchL2Distillation,
)
from aigi.methods.featdistill.model import FeatDistillExpert
from aigi.methods.featdistill.trainer import epoch_order
from aigi.training.checkpoint import (
    CheckpointError,
    Checkpoints,
    load_checkpoint,
    save_checkpoint,
)

TINY = "random:tiny-clip@0"


def expert(**kw) -> FeatDistillExpert:
    torch.manual_seed(0)
    return FeatDistillExpert(backbone=kw.pop("backbone", TINY), **kw)


# ---- the momentum schedule and the queue ------------------------------------------------
@pytest.mark.parametrize("m_base,m_max", [(0.99, 0.999), (0.9, 0.99), (0.5, 1.0)])
def test_momentum_schedule_matches_the_formula(m_base, m_max):
    total = 1000
    assert momentum_at(0, total, m_base, m_max) == pytest.approx(m_base, abs=1e-12)  # cos 0 = 1
    assert momentum_at(total // 2, total, m_base, m_max) == pytest.approx((m_base + m_max) / 2, abs=1e-12)
    assert momentum_at(total, total, m_base, m_max) == pytest.approx(m_max, abs=1e-12)  # cos π = −1
    step = 250
    formula = m_max - (m_max - m_base) * (math.cos(math.pi * step / total) + 1) / 2
    assert momentum_at(step, total, m_base, m_max) == pytest.approx(formula, abs=1e-12)
    values = [momentum_at(s, total, m_base, m_max) for s in range(0, total + 1, 50)]
    assert all(a <= b for a, b in zip(values, values[1:]))


def test_queue_keeps_its_size_and_order():
    q = NegativeQueue(size=5, dim=2)
    assert len(q) == 0 and q.keys().shape == (0, 2)
    pushed = []
    for start in (0, 2, 5, 6):  # batches of 2, 3, 1, 4 keys
        n = {0: 2, 2: 3, 5: 1, 6: 4}[start]
        batch = torch.stack([torch.tensor([float(i), -float(i)]) for i in range(start, start + n)])
        q.push(batch)
        pushed += list(range(start, start + n))
        expected = pushed[-5:]
        assert len(q) == len(expected) and q.buffer.shape == (5, 2)
        assert q.keys()[:, 0].tolist() == [float(i) for i in expected]  # oldest first
    q.push(torch.arange(14.0, 28.0).reshape(7, 2))  # more keys than slots: the newest five remain
    assert q.keys()[:, 0].tolist() == [18.0, 20.0, 22.0, 24.0, 26.0]


def test_queue_state_round_trips():
    q = NegativeQueue(4, 3)
    q.push(torch.randn(6, 3))
    r = NegativeQueue(4, 3)
    r.load_state_dict(q.state_dict())
    assert torch.equal(r.keys(), q.keys()) and len(r) == 4


def test_ema_update_moves_by_one_minus_momentum():
    t, s = [torch.zeros(3)], [torch.ones(3)]
    ema_update(t, s, 1.0)
    assert torch.equal(t[0], torch.zeros(3))
    ema_update(t, s, 0.75)
    assert torch.allclose(t[0], torch.full((3,), 0.25))
    ema_update(t, s, 0.0)
    assert torch.equal(t[0], torch.ones(3))


def test_info_nce_by_hand():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    k = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    neg = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    loss = info_nce(q, k, neg, 0.1)
    manual = 0.0
    for i in range(3):
        logits = torch.cat([(q[i] @ k[i]).view(1), neg @ q[i]]) / 0.1
        manual += -torch.log_softmax(logits, 0)[0]
    assert loss.item() == pytest.approx(manual.item() / 3, rel=1e-5)
    assert info_nce(q, k, neg[:0], 0.1).item() == pytest.approx(0.0, abs=1e-7)  # no negatives yet


# ---- the expert ---------------------------------------------------------------------------
def test_untrained_lora_expert_has_the_frozen_towers_embedding():
    det = expert(tune="lora", tuned_blocks=2).eval()
    frozen = load_backbone(TINY).freeze()
    x = torch.randn(2, 3, 32, 32)
    _, embed, _ = det.run(det.prefix(x))
    assert torch.allclose(embed, frozen.encode(x).embed, atol=1e-6)


@pytest.mark.parametrize("tune,blocks,stem_trains,cache", [("full", 2, False, "tokens@2"), ("full", "all", True, None),
                                                            ("lora", "all", False, "tokens@0")])
def test_what_trains_and_what_is_saved(tune, blocks, stem_trains, cache):
    det = expert(tune=tune, tuned_blocks=blocks)
    assert det.cache_point() == cache
    trains = {n for n, p in det.named_parameters() if p.requires_grad}
    assert any(n.startswith("head.") for n in trains)
    assert any(".embeddings." in n for n in trains) == stem_trains
    first = det.first_tuned
    for i in range(det.model.num_layers):
        in_block = [n for n in trains if f".layers.{i}." in n]
        assert bool(in_block) == (i >= first)
    saved = set(det.state_to_save())
    assert saved == {k for k in det.state_dict() if not k.startswith("model.") or k in trains or ".lora." in k}
    if tune == "lora":
        assert all(".lora." in k for k in saved if k.startswith("model."))


def test_head_is_d_256_1_and_learns_faster():
    det = expert(tune="lora", tuned_blocks=1, head_lr_scale=10)
    assert det.head[0].in_features == det.model.embed_dim and det.head[0].out_features == 256
    assert det.head[-1].out_features == 1
    groups = det.param_groups(1e-4)
    assert groups[1]["lr"] == pytest.approx(1e-3) and groups[1]["params"] == list(det.head.parameters())


def test_save_and_load_give_the_same_scores(tmp_path):
    det = expert(tune="full", tuned_blocks=2)
    with torch.no_grad():
        for p in det.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    det.save(tmp_path / "d")
    loaded = load_detector_dir(tmp_path / "d")
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(det.eval()(x), loaded(x), atol=1e-6)
    assert json.loads((tmp_path / "d" / "config.json").read_text())["params"]["tune"] == "full"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="tune must be"):
        expert(tune="half")
    with pytest.raises(ValueError, match="tuned_blocks"):
        expert(tuned_blocks=9)
    with pytest.raises(ValueError, match="unknown crd"):
        expert(crd={"queu": 3})
    with pytest.raises(ValueError, match="match no linear"):
        expert(tune="lora", lora_targets=["nothing"])


# ---- the distillations --------------------------------------------------------------------
def _perturb(det):
    with torch.no_grad():
        for p in det.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))


def test_l2_distillation_is_zero_at_the_boundary_and_pulls_the_student_back():
    det = expert(tune="full", tuned_blocks=2)
    dist = PatchL2Distillation(det)
    dist.begin()
    x = torch.randn(3, 3, 32, 32)
    prefix = det.prefix(x)
    tokens, embed, _ = det.run(prefix)
    assert dist.loss(prefix, tokens, embed).item() == pytest.approx(0.0, abs=1e-12)
    _perturb(det)
    tokens, embed, _ = det.run(prefix)
    loss = dist.loss(prefix, tokens, embed)
    assert loss.item() > 0
    loss.backward()
    assert all(p.grad is None for p in dist.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in det.model.parameters())
    # the dense patch tokens, not the CLS token, are compared
    assert det.model.patch_tokens(tokens).shape[1] == tokens.shape[1] - 1


def test_contrastive_teacher_follows_the_student_by_the_momentum():
    det = expert(tune="lora", tuned_blocks=2, crd={"queue": 8, "dim": 4, "hidden": 8, "m_base": 0.5, "m_max": 0.5})
    dist = ContrastiveDistillation(det)
    dist.begin()
    teacher, student = dist._pairs()
    assert all(torch.equal(t, s) for t, s in zip(teacher, student))
    before = [t.clone() for t in teacher]
    _perturb(det)
    x = torch.randn(3, 3, 32, 32)
    prefix = det.prefix(x)
    tokens, embed, _ = det.run(prefix)
    loss = dist.loss(prefix, tokens, embed)
    loss.backward()
    assert all(p.grad is None for p in dist.teacher.parameters())
    status = dist.after_step(1, 10)
    assert status["momentum"] == 0.5 and status["queue"] == 3
    for t, b, s in zip(teacher, before, student):
        assert torch.allclose(t, 0.5 * b + 0.5 * s, atol=1e-6)


def test_distillations_are_registered():
    assert DISTILLATIONS.names() == ["crd", "l2", "none"]


# ---- the two-stage trainer: resume ------------------------------------------------------
def _recipe(tiny_data: Path, out: Path, distill: str, **train) -> dict:
    return {"detector": "featdistill", "backbone": TINY,
            "params": {"tune": "full", "tuned_blocks": 2, "stage1_epochs": 1, "distill": distill,
                       "crd": {"queue": 16, "dim": 8, "hidden": 16}},
            "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
            "train": {"epochs": 3, "batch_size": 8, "lr": 1e-3, "keep_best": False, **train},
            "augment": {"policy": {"prob": 0.5, "max_ops": 2}}, "output": str(out)}


class _StopAfter:
    """A progress bar that presses Ctrl-C after ``n`` batches."""

    def __init__(self, n: int) -> None:
        self.left = n

    def __call__(self, total, desc):
        return self

    def update(self, k):
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt

    def close(self):
        pass


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "detector" / "model.safetensors"))


@pytest.mark.parametrize("distill,stop", [("l2", 4), ("l2", 6), ("crd", 5), ("crd", 7)])
def test_resume_across_the_stage_boundary_reaches_the_same_weights(tiny_data, tmp_path, distill, stop):
    """4 batches per epoch; stop 4 = end of stage 1, 5 = first stage-2 step, 7 = mid stage 2."""
    from aigi.training.run import train

    straight = train(_recipe(tiny_data, tmp_path / "straight", distill), echo=None)
    with pytest.raises(KeyboardInterrupt):
        train(_recipe(tiny_data, tmp_path / "cut", distill), progress_factory=_StopAfter(stop), echo=None)
    _, meta = Checkpoints(tmp_path / "cut" / "checkpoint").load()
    assert meta["step"] == stop
    resumed = train(_recipe(tiny_data, tmp_path / "cut", distill, resume=True), echo=None)
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    log = (resumed / "train.log").read_text()
    assert "interrupted" in log and "resumed from" in log
    history = json.loads((resumed / "metrics.json").read_text())["history"]
    assert [r["stage"] for r in history] == [1, 2, 2]
    assert (resumed / "stage1" / "config.json").is_file()


def test_resume_refuses_a_checkpoint_from_another_recipe(tiny_data, tmp_path):
    from aigi.training.run import train

    train(_recipe(tiny_data, tmp_path / "r", "l2", epochs=1), echo=None)
    with pytest.raises(ConfigError, match=r"changed recipe \(train\.batch_size: 8 -> 4\)"):  # the run's config.yaml
        train(_recipe(tiny_data, tmp_path / "r", "l2", epochs=1, batch_size=4, resume=True), echo=None)
    (tmp_path / "r" / "config.yaml").unlink()  # without it, the checkpoint itself still refuses
    with pytest.raises(CheckpointError, match="different recipe"):
        train(_recipe(tiny_data, tmp_path / "r", "l2", epochs=1, batch_size=4, resume=True), echo=None)


def test_epoch_order_depends_on_seed_and_epoch_only():
    assert (epoch_order(10, 0, 1) == epoch_order(10, 0, 1)).all()
    assert sorted(epoch_order(10, 0, 2)) == list(range(10))
    assert not (epoch_order(10, 0, 1) == epoch_order(10, 0, 2)).all()


def test_checkpoint_survives_a_crash_between_renames(tmp_path):
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, {"x": torch.ones(2)}, {"step": 1})
    save_checkpoint(folder, {"x": torch.zeros(2)}, {"step": 2})
    tensors, meta = load_checkpoint(folder)
    assert meta["step"] == 2 and torch.equal(tensors["x"], torch.zeros(2))
    folder.rename(tmp_path / "ckpt.old")  # as if killed after moving the old one aside
    assert load_checkpoint(folder)[1]["step"] == 2
    with pytest.raises(CheckpointError, match="nothing"):
        load_checkpoint(tmp_path / "nothing")


# ---- ensemble recipes -------------------------------------------------------------------------
def test_ensemble_recipe_trains_experts_and_votes(tiny_data, tmp_path, monkeypatch):
    from aigi.training import run

    recipe = {"output": str(tmp_path / "ens"), "weights": [1, 3],
              "experts": {"a": {k: v for k, v in _recipe(tiny_data, tmp_path / "x", "l2", epochs=2).items() if k != "output"},
                          "b": {k: v for k, v in _recipe(tiny_data, tmp_path / "y", "crd", epochs=2).items() if k != "output"}},
              "augment": {"policy": {"prob": 0.0}}}
    out = run.train(recipe, echo=None)
    det = aigi.load_detector(out)
    assert det.name == "ensemble" and det.member_names == ["a", "b"] and det.weights == [1.0, 3.0]
    assert (out / "experts" / "a" / "stage1").is_dir()
    metrics = json.loads((out / "metrics.json").read_text())["validation"]
    assert set(metrics) == {"ensemble", "a", "b"}
    files = sorted(str(p) for p in (tiny_data / "test").rglob("*.png"))[:4]
    for p in det.predict(files):
        assert p.prob_fake == pytest.approx((p.extra["p_a"] + 3 * p.extra["p_b"]) / 4, abs=1e-6)
    # shared sections reach every expert, an expert's own override wins
    assert "prob: 0.0" in (out / "experts" / "a" / "config.yaml").read_text()
    # resume keeps finished experts
    calls = []
    real_train = run.train
    monkeypatch.setattr(run, "train", lambda cfg, **kw: calls.append(cfg) or real_train(cfg, **kw))
    from aigi.training.ensemble_recipe import train_ensemble

    train_ensemble({**recipe, "train": {"resume": True}}, run.train, echo=None)
    assert calls == []


def test_ensemble_recipe_files_resolve_relative_paths(tmp_path):
    from aigi.config import load_yaml

    (tmp_path / "e.yaml").write_text("detector: featdistill\nparams: {distill: l2}\n")
    (tmp_path / "ens.yaml").write_text("experts:\n  one: e.yaml\n  two: {base: e.yaml, params: {distill: crd}}\n")
    cfg = load_yaml(tmp_path / "ens.yaml")
    assert cfg["experts"]["one"]["params"]["distill"] == "l2"
    assert cfg["experts"]["two"] == {"detector": "featdistill", "params": {"distill": "crd"}}


# ---- true architectures (random weights) ----------------------------------------------------------
@pytest.mark.parametrize("arch,dim,size", [("random:clip-vit-l14", 768, 224), ("random:siglip-so400m-patch14-384", 1152, 384)])
def test_paper_experts_on_true_architectures(arch, dim, size):
    det = expert(backbone=arch, tune="lora", tuned_blocks=1).eval()
    assert det.head[0].in_features == dim and det.head[0].out_features == 256
    with torch.no_grad():
        logit = det(torch.randn(1, 3, size, size))
    assert logit.shape == (1,) and torch.isfinite(logit).all()


# ---- the command line ------------------------------------------------------------------------
def test_cli_train_resume_and_describe_an_ensemble_recipe(tiny_data, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from aigi.cli import app

    expert_recipe = _recipe(tiny_data, tmp_path / "unused", "l2", epochs=2)
    (tmp_path / "expert.yaml").write_text(yaml.safe_dump({k: v for k, v in expert_recipe.items() if k != "output"}))
    (tmp_path / "ens.yaml").write_text(yaml.safe_dump({
        "output": str(tmp_path / "ens"),
        "experts": {"one": "expert.yaml", "two": {"base": "expert.yaml", "params": {"distill": "crd"}}}}))
    res = CliRunner().invoke(app, ["describe", str(tmp_path / "ens.yaml")])
    assert res.exit_code == 0, res.output
    assert "expert one: featdistill" in res.output and "expert two: featdistill" in res.output
    res = CliRunner().invoke(app, ["train", str(tmp_path / "ens.yaml")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ens" / "detector" / "members" / "two" / "config.json").is_file()
    res = CliRunner().invoke(app, ["train", str(tmp_path / "ens.yaml"), "--resume"])
    assert res.exit_code == 0 and "expert one: already trained" in res.output
    # an unusable checkpoint is a one-line error naming the folder
    ckpt = tmp_path / "solo" / "checkpoint" / "step-000000003"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text("{not json")
    res = CliRunner().invoke(app, ["train", str(tmp_path / "expert.yaml"), f"output={tmp_path / 'solo'}", "--resume"])
    assert res.exit_code != 0 and str(ckpt) in res.output and "unreadable checkpoint" in res.output


def test_bf16_mixed_precision_and_loader_workers_train(tiny_data, tmp_path):
    from aigi.training.run import train

    run = train(_recipe(tiny_data, tmp_path / "bf16", "l2", epochs=2, precision="bf16", workers=1), echo=None)
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert all(math.isfinite(r["loss"]) for r in history) and history[-1]["distill"] >= 0
    with pytest.raises(ValueError, match="precision"):
        train(_recipe(tiny_data, tmp_path / "fp8", "l2", epochs=1, precision="fp8"), echo=None)


def test_export_merges_lora_into_the_layers(tmp_path):
    from typer.testing import CliRunner

    from aigi.adapters import LoRALinear
    from aigi.cli import app

    det = expert(tune="lora", tuned_blocks=2)
    _perturb(det)
    det.save(tmp_path / "lora")
    res = CliRunner().invoke(app, ["export", str(tmp_path / "lora"), "--out", str(tmp_path / "merged"), "--merge"])
    assert res.exit_code == 0, res.output
    merged = load_detector_dir(tmp_path / "merged")
    assert merged.lora_merged and not any(isinstance(m, LoRALinear) for m in merged.modules())
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(det.eval()(x), merged(x), atol=1e-5)
    with pytest.raises(ValueError, match="no adapters|only an unmerged"):
        aigi.export(tmp_path / "merged", tmp_path / "again", merge_shared=True)


def test_head_hidden_zero_is_a_linear_head():
    det = expert(tune="lora", tuned_blocks=1, head_hidden=0)
    linears = [m for m in det.head.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == det.model.embed_dim
    assert det(torch.randn(2, 3, 32, 32)).shape == (2,)


def test_a_tuned_stem_leaves_nothing_cacheable(tmp_path):
    from aigi.features.cache import FeatureCache

    det = expert(tune="full", tuned_blocks="all")
    cache = FeatureCache(det.model, root=tmp_path)
    for key in ("tokens@0", "embed"):
        with pytest.raises(ValueError, match="adapted blocks"):
            cache.store(key)
    FeatureCache(expert(tune="full", tuned_blocks=2).model, root=tmp_path).store("tokens@2")  # the frozen prefix is fine


def test_command_line_overrides_reach_every_expert(tmp_path):
    from aigi.config import resolve

    (tmp_path / "e.yaml").write_text("detector: featdistill\ntrain: {epochs: 3, lr: 0.1}\n")
    (tmp_path / "ens.yaml").write_text("output: runs/x\nexperts:\n  one: e.yaml\n  two: {base: e.yaml, train: {epochs: 5}}\n")
    cfg = resolve(tmp_path / "ens.yaml", ["train.epochs=1", "output=runs/y", "experts.two.train.lr=0.5"])
    assert cfg["output"] == "runs/y" and cfg["train"]["epochs"] == 1
    assert [cfg["experts"][n]["train"]["epochs"] for n in ("one", "two")] == [1, 1]
    assert cfg["experts"]["one"]["train"]["lr"] == 0.1 and cfg["experts"]["two"]["train"]["lr"] == 0.5
    assert "output" not in cfg["experts"]["one"]
