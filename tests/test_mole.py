"""CLIPMoLE: identity at init, gradients only where they belong, merge, save/load,
the paper's parameter shares (Table 4), training from the cached frozen prefix."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch import nn
from typer.testing import CliRunner

import aigi
from aigi.api import describe
from aigi.backbones import load_backbone
from aigi.cli import app
from aigi.methods.mole.model import MoLEDetector


def _x(n=2, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _randomise_b(det: MoLEDetector, seed=1):
    g = torch.Generator().manual_seed(seed)
    for name, p in det.named_parameters():
        if name.endswith(".B"):
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def test_untrained_adapters_give_exactly_the_frozen_features():
    det = MoLEDetector("random:tiny-clip", adapted_blocks=2, attention_rank=4).eval()
    frozen = load_backbone("random:tiny-clip")
    x = _x()
    with torch.no_grad():
        assert torch.equal(det.model.encode(x).embed, frozen.encode(x).embed)


def test_gradients_reach_only_adapters_router_and_head():
    det = MoLEDetector("random:tiny-clip", adapted_blocks=2)
    _randomise_b(det)
    out = det(_x(4))
    det.losses(out, torch.tensor([0, 1, 0, 1])).get("loss").backward()
    for name, p in det.named_parameters():
        adapter = ".experts." in name or name.startswith("head.")
        if adapter:
            assert p.requires_grad, name
        else:
            assert not p.requires_grad and p.grad is None, name
    assert det.mixtures[0].router.weight.grad.abs().sum() > 0
    assert det.head.weight.grad.abs().sum() > 0


def test_loss_adds_weighted_load_balancing():
    det = MoLEDetector("random:tiny-clip", adapted_blocks=2, lb_weight=0.5)
    logits = det(_x(3))
    parts = det.losses(logits, torch.tensor([0, 1, 1]))
    lb = sum(m.last_stats.load_balancing_loss() for m in det.mixtures)
    assert parts["load_balancing"].item() == pytest.approx(lb.item())
    assert parts["loss"].item() == pytest.approx((parts["bce"] + 0.5 * lb).item())


def test_merged_shared_experts_equal_unmerged():
    det = MoLEDetector("random:tiny-clip", adapted_blocks=3).eval()
    _randomise_b(det)
    x = _x(3)
    with torch.no_grad():
        before = det(x)
        det.merge_shared_experts()
        after = det(x)
    assert all(isinstance(m.shared, nn.Linear) for m in det.mixtures)
    assert torch.allclose(before, after, atol=1e-5)


@pytest.mark.parametrize("params,per_block", [
    ({"attention_rank": 8, "shared_rank": None, "expert_ranks": []}, 4 * 2 * 8 * 32),  # (a) LoRA on q,k,v,o
    ({"expert_ranks": []}, 2 * 8 * 32),                                                 # (b) shared LoRA only
    ({"attention_rank": 8, "expert_ranks": []}, 4 * 2 * 8 * 32 + 2 * 8 * 32),           # (c) attention + MLP
    ({"shared_rank": None}, 2 * 28 * 32 + 3 * 32),                                      # (d) routed experts only
    ({}, 2 * 8 * 32 + 2 * 28 * 32 + 3 * 32),                                            # (e) full mixture
])
def test_table5_variants_are_configs(params, per_block):
    det = MoLEDetector("random:tiny-clip", adapted_blocks=2, **params)
    head = 16 + 1
    assert sum(p.numel() for p in det.trainable_parameters()) == 2 * per_block + head


@pytest.mark.parametrize("blocks,share", [(1, 0.067), (3, 0.200), ("all", 0.792)])
def test_table4_trainable_share_vit_b32(blocks, share):
    info = describe({"detector": "mole", "backbone": "openai/clip-vit-base-patch32", "params": {"adapted_blocks": blocks}})
    assert info["sized_with"] == "random:clip-vit-b32"
    assert 100 * info["trainable_share_of_vision_tower"] == pytest.approx(share, rel=0.03)


@pytest.mark.slow
@pytest.mark.parametrize("blocks,share", [(2, 0.051), (3, 0.077), (6, 0.154)])
def test_table4_trainable_share_vit_l14(blocks, share):
    info = describe({"detector": "mole", "backbone": "openai/clip-vit-large-patch14", "params": {"adapted_blocks": blocks}})
    assert 100 * info["trainable_share_of_vision_tower"] == pytest.approx(share, rel=0.03)


def test_save_keeps_only_adapters_and_reloads(tmp_path):
    det = MoLEDetector("random:tiny-clip", adapted_blocks=2).eval()
    _randomise_b(det)
    det.save(tmp_path / "d")
    keys = set(load_file(str(tmp_path / "d" / "model.safetensors")))
    assert keys and all(".experts." in k or k.startswith("head.") for k in keys)
    again = aigi.detectors.load_detector_dir(tmp_path / "d")
    x = _x(2)
    with torch.no_grad():
        assert torch.allclose(again(x), det(x), atol=1e-6)


def test_train_from_cached_prefix_with_routing_report(tiny_data, tmp_path):
    recipe = tmp_path / "mole.yaml"
    recipe.write_text(yaml.safe_dump({
        "detector": "mole", "backbone": "random:tiny-clip", "params": {"adapted_blocks": 2},
        "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
        "train": {"epochs": 15, "lr": 6e-3, "batch_size": 8}, "output": str(tmp_path / "run")}))
    res = CliRunner().invoke(app, ["train", str(recipe)])
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    assert "of the vision tower" in (run / "train.log").read_text()
    assert "from cache" in (run / "train.log").read_text()
    for name in ["routing.csv", "routing.png"]:
        assert (run / "report" / name).stat().st_size > 0
    rows = (run / "report" / "routing.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3  # header + 2 blocks x 3 experts
    shares = [[float(v) for v in r.split(",")[3:5]] for r in rows[1:]]
    for b in range(2):
        for col in range(2):
            assert sum(s[col] for s in shares[3 * b : 3 * b + 3]) == pytest.approx(1.0, abs=1e-6)
    assert json.loads((run / "metrics.json").read_text())["validation"]["auc"] > 0.8


def test_every_shipped_mole_recipe_builds():
    """Each recipe resolves and its params build a MoLE (on a tiny backbone, for speed)."""
    from pathlib import Path

    from aigi.config import load_yaml
    from aigi.config.recipe import load_recipe

    root = Path(__file__).resolve().parents[1] / "configs"
    paths = sorted(root.glob("mole*.yaml")) + sorted((root / "mole-ablations").glob("*.yaml"))
    assert len(paths) >= 28
    variants = set()
    for path in paths:
        cfg = load_recipe(load_yaml(path)).as_dict()
        assert cfg["detector"] == "mole" and cfg["train"]["lr"] == 6e-4
        assert cfg["augment"]["blur_prob"] == cfg["augment"]["jpeg_prob"] == 0.1
        params = dict(cfg["params"])
        if params.get("adapted_blocks") not in (None, "all"):
            params["adapted_blocks"] = min(int(params["adapted_blocks"]), 4)
        det = MoLEDetector("random:tiny-clip", **params)
        variants.add((det.shared_rank, tuple(det.expert_ranks), det.attention_rank))
    assert {(None, (), 8), (8, (), None), (8, (), 8), (None, (4, 8, 16), None), (8, (4, 8, 16), None)} <= variants
    assert (8, (4, 8, 16, 32), None) in variants and (16, (4, 8, 16), None) in variants


def test_export_with_merged_shared_experts(tmp_path):
    det = MoLEDetector("random:tiny-clip", adapted_blocks=2).eval()
    _randomise_b(det)
    det.save(tmp_path / "trained")
    res = CliRunner().invoke(app, ["export", str(tmp_path / "trained"), "--out", str(tmp_path / "merged"),
                                   "--merge-shared"])
    assert res.exit_code == 0, res.output
    merged = aigi.load_detector(tmp_path / "merged")
    assert merged.shared_merged and all(isinstance(m.shared, nn.Linear) for m in merged.mixtures)
    keys = set(load_file(str(tmp_path / "merged" / "model.safetensors")))
    assert any(k.endswith("experts.shared.weight") for k in keys) and not any(".shared.A" in k for k in keys)
    x = _x(3)
    with torch.no_grad():
        assert torch.allclose(merged(x), det(x), atol=1e-5)
    res = CliRunner().invoke(app, ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2


def test_features_behind_adapters_are_never_cached(tmp_path):
    from aigi.features.cache import FeatureCache

    det = MoLEDetector("random:tiny-clip", adapted_blocks=2)
    cache = FeatureCache(det.backbone, root=tmp_path)
    cache.store("tokens@2")  # the frozen prefix: fine
    for key in ("embed", "cls", "tokens@3"):
        with pytest.raises(ValueError, match="adapted blocks"):
            cache.store(key)
