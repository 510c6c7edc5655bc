"""LTD: window selection, transition tokens, the shared block, early exit, ablations."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

import aigi
from aigi.cli import app
from aigi.methods.ltd.model import LTDDetector

from .conftest import assert_pixels_score_as_cached_cls


def _ltd(**kw) -> LTDDetector:
    torch.manual_seed(0)
    args = {"backbone": "random:tiny-clip", "num_layers": 4, "width": 32, "n": 2, "heads": 4, "dropout": 0.0}
    return LTDDetector(**{**args, **kw}).eval()


def _features(b=5, layers=4, width=32, seed=0):
    return torch.randn(b, layers, width, generator=torch.Generator().manual_seed(seed))


def test_inference_window_is_argmax_of_logits():
    det = _ltd(n=2)  # 4 blocks, windows start at 0, 1, 2
    assert det.candidates == 3
    with torch.no_grad():
        det.selection_logits.copy_(torch.tensor([0.1, 2.0, -1.0]))
    assert det.selected_start() == 1 and det.selected_layers() == [1, 2]
    feats = _features()
    assert torch.equal(det.select(feats), feats[:, 1:3])
    with torch.no_grad():
        det.selection_logits.copy_(torch.tensor([0.1, 2.0, 3.0]))
    assert torch.equal(det.select(feats), feats[:, 2:4])


def test_transition_tokens_are_adjacent_differences():
    window = _features(layers=5)
    d = LTDDetector.transitions(window)
    assert d.shape == (5, 4, 32)
    for k in range(4):
        assert torch.equal(d[:, k], window[:, k + 1] - window[:, k])


def test_one_shared_block_serves_both_branches():
    det = _ltd(n=3)
    blocks = [m for m in det.modules() if isinstance(m, torch.nn.TransformerEncoderLayer)]
    assert blocks == [det.block]
    seen = []
    handle = det.block.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    with torch.no_grad():
        det.head_from_features(_features())
    handle.remove()
    assert seen == [4, 3]  # raw: CLS + 3 layers, transition: CLS + 2 differences, same module


def test_early_exit_gives_full_pass_logits_and_runs_fewer_blocks():
    det = _ltd(n=2)
    with torch.no_grad():
        det.selection_logits.copy_(torch.tensor([3.0, 0.0, 0.0]))  # blocks 0..1 of 4
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ran = []
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: ran.append(k)) for k, b in enumerate(det.backbone.blocks)]
    with torch.no_grad():
        early = det(x)
    for h in hooks:
        h.remove()
    assert ran == [0, 1]
    with torch.no_grad():
        full = det.head_from_features(det.extract(x))
    assert torch.allclose(early, full, atol=1e-6)


def test_gumbel_training_picks_one_window_per_image_and_trains_the_logits():
    det = _ltd(n=2).train()
    feats = _features(b=64)
    window = det.select(feats)
    starts = []
    for i in range(64):  # hard per image, not a blend
        match = [s for s in range(3) if torch.equal(window[i], feats[i, s : s + 2])]
        assert len(match) == 1
        starts.append(match[0])
    assert len(set(starts)) > 1, "each image draws its own sample"
    det.head_from_window(window).sum().backward()
    assert det.selection_logits.grad is not None and det.selection_logits.grad.abs().sum() > 0


def test_candidate_block_range_and_selection_learning_rate():
    det = _ltd(n=2, candidate_blocks=[1, 3], selection_lr_scale=50.0)
    assert det.candidates == 2
    with torch.no_grad():
        det.selection_logits.copy_(torch.tensor([0.0, 1.0]))
    assert det.selected_layers() == [2, 3]
    feats = _features()
    assert torch.equal(det.select(feats), feats[:, 2:4])
    groups = det.param_groups(1e-3)
    assert groups[1]["params"] == [det.selection_logits] and groups[1]["lr"] == pytest.approx(5e-2)
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in det.trainable_parameters())
    with pytest.raises(ValueError, match="candidate_blocks"):
        _ltd(n=3, candidate_blocks=[2, 3])


def test_projection_is_identity_at_backbone_width():
    assert isinstance(_ltd().project, torch.nn.Identity)
    assert isinstance(_ltd(hidden=16, heads=4).project, torch.nn.Linear)


def test_temperature_schedule():
    det = _ltd(tau_start=2.0, tau_end=0.5)
    det.on_train_progress(0.0)
    assert det.tau == pytest.approx(2.0)
    det.on_train_progress(0.5)
    assert det.tau == pytest.approx(1.25)  # linear, as the authors' schedule
    det.on_train_progress(1.0)
    assert det.tau == pytest.approx(0.5)


@pytest.mark.parametrize("branches,width", [("raw", 32), ("transition", 32), ("both", 64)])
def test_branch_ablations(branches, width):
    det = _ltd(branches=branches)
    assert det.classifier.in_features == width
    assert det.head_from_features(_features()).shape == (5,)


def test_fixed_window_and_no_position_encoding():
    det = _ltd(fixed_start=2, position_encoding=False)
    assert det.selected_layers() == [2, 3] and not det.selection_logits.requires_grad
    assert not det.pos_raw.requires_grad and det.pos_raw.abs().sum() == 0
    trainable = {id(p) for p in det.trainable_parameters()}
    assert id(det.pos_raw) not in trainable and id(det.selection_logits) not in trainable
    with pytest.raises(ValueError, match="fixed_start"):
        _ltd(fixed_start=3)


@pytest.mark.parametrize("n", range(3, 10))
def test_window_sizes_on_a_12_block_backbone(n):
    det = LTDDetector(num_layers=12, width=32, n=n, heads=4)
    assert det.candidates == 12 - n + 1
    assert det.head_from_features(_features(layers=12)).shape == (5,)


def test_train_from_cache_writes_report_and_reloads(tiny_data, tmp_path):
    recipe = tmp_path / "ltd.yaml"
    recipe.write_text(yaml.safe_dump({
        "detector": "ltd", "backbone": "random:tiny-clip", "params": {"n": 2, "heads": 4, "dropout": 0.0},
        "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
        "train": {"epochs": 30, "lr": 3e-3, "batch_size": 8}, "output": str(tmp_path / "run")}))
    res = CliRunner().invoke(app, ["train", str(recipe)])
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    for name in ["ltd_transitions.csv", "ltd_selection.csv", "ltd_report.png", "ltd_window.txt"]:
        assert (run / "report" / name).stat().st_size > 0, name
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert len(history) == 30 and len(history[0]["selection"]) == 3
    assert history[-1]["tau"] < history[0]["tau"]
    assert json.loads((run / "metrics.json").read_text())["validation"]["auc"] > 0.9
    det = aigi.load_detector(run)
    assert isinstance(det, LTDDetector) and det.num_layers == 4 and det.width == 32
    assert_pixels_score_as_cached_cls(det, tiny_data / "test")


def test_every_shipped_ltd_recipe_builds():
    """Each ablation config resolves and builds on a 12-block architecture (random weights)."""
    from pathlib import Path
    from types import SimpleNamespace

    from aigi.backbones import ARCHITECTURES
    from aigi.config import load_yaml
    from aigi.config.recipe import load_recipe
    from aigi.training.run import build_detector

    by_hub = {a.hub_id: a for a in ARCHITECTURES.values() if a.family == "clip"}
    by_hub["embedded"] = ARCHITECTURES["clip-vit-b16"]

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("ltd*.yaml"))
    configs += sorted((Path(__file__).resolve().parents[1] / "configs" / "ltd-ablations").glob("*.yaml"))
    assert len(configs) >= 12
    seen = set()
    for path in configs:
        recipe = load_recipe(load_yaml(path))
        cfg = recipe.as_dict()
        assert cfg["detector"] == "ltd"
        arch = by_hub[cfg["backbone"]].make_config()  # the true architecture's size, nothing downloaded
        det = build_detector(recipe, SimpleNamespace(num_layers=arch.num_hidden_layers, width=arch.hidden_size))
        det.params()
        seen.add((det.branches, det.position_encoding, det.fixed_start, det.n))
    assert {n for *_, n in seen} >= set(range(3, 10))
    assert {b for b, *_ in seen} == {"both", "raw", "transition"}
