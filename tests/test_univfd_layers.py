"""The UnivFD probe read across blocks: block choice, normalisation, training from the `cls` cache."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

import aigi
from aigi.cli import app
from aigi.errors import InputError
from aigi.methods.univfd import UnivFDLayers

from .conftest import assert_pixels_score_as_cached_cls


def _probe(**kw) -> UnivFDLayers:
    torch.manual_seed(0)
    return UnivFDLayers(**{"backbone": "random:tiny-clip", "num_layers": 4, "width": 32, **kw}).eval()


def _features(b=6, seed=0) -> torch.Tensor:
    return torch.randn(b, 4, 32, generator=torch.Generator().manual_seed(seed))


def test_blocks_left_out_do_not_change_the_logit():
    probe = _probe(blocks=[1, -1])
    x = _features()
    y = x.clone()
    y[:, [0, 2]] = torch.randn(6, 2, 32)
    assert probe.blocks == [1, 3]
    assert probe.head.in_features == 2 * 32
    assert torch.equal(probe.head_from_features(x), probe.head_from_features(y))
    y[:, 3] += 1.0 + torch.randn(6, 32)
    assert not torch.allclose(probe.head_from_features(x), probe.head_from_features(y))


def test_each_block_is_normalised_so_its_scale_cannot_dominate():
    probe = _probe()
    x = _features()
    scaled = x * torch.tensor([1.0, 50.0, 0.5, 7.0]).view(1, 4, 1) + torch.tensor([0.0, 3.0, -2.0, 9.0]).view(1, 4, 1)
    assert torch.allclose(probe.head_from_features(x), probe.head_from_features(scaled), atol=1e-4)


def test_the_logit_is_one_linear_layer_over_the_normalised_tokens():
    probe = _probe(blocks=[0, 2])
    x = _features()
    norm = torch.nn.functional.layer_norm(x[:, [0, 2]], (32,)).flatten(1)
    assert torch.allclose(probe.head_from_features(x), norm @ probe.head.weight[0] + probe.head.bias, atol=1e-5)


@pytest.mark.parametrize("blocks, cause", [([4], "block indices"), ([], "non-empty"), ([1, -3], "twice")])
def test_bad_block_lists_are_named(blocks, cause):
    with pytest.raises(InputError, match=cause):
        _probe(blocks=blocks)


def test_scoring_stops_after_the_deepest_chosen_block_and_equals_the_cached_path():
    probe = _probe(blocks=[2, 0])
    bb = probe.backbone
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ran = []
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: ran.append(k)) for k, b in enumerate(bb.blocks)]
    with torch.no_grad():
        direct = probe(pixels)
    for h in hooks:
        h.remove()
    assert ran == [0, 1, 2]  # block 3 never runs
    with torch.no_grad():
        cached = probe.head_from_features(bb.encode(pixels, layers="all").cls_per_layer)
    assert torch.allclose(direct, cached, atol=1e-5)


def test_features_of_another_shape_are_refused():
    with pytest.raises(InputError, match=r"\[batch, 4, 32\]"):
        _probe().head_from_features(torch.randn(2, 32))


def test_train_from_the_cls_cache_and_reload(tiny_data, tmp_path):
    recipe = tmp_path / "layers.yaml"
    recipe.write_text(yaml.safe_dump({
        "detector": "univfd-layers", "backbone": "random:tiny-clip", "params": {"blocks": [1, 2, 3]},
        "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
        "train": {"epochs": 30, "lr": 3e-3, "batch_size": 8}, "output": str(tmp_path / "run")}))
    res = CliRunner().invoke(app, ["train", str(recipe)])
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    assert json.loads((run / "metrics.json").read_text())["validation"]["auc"] > 0.9
    det = aigi.load_detector(run)
    assert isinstance(det, UnivFDLayers) and det.blocks == [1, 2, 3] and det.num_layers == 4
    assert_pixels_score_as_cached_cls(det, tiny_data / "test")
