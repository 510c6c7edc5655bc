"""The feature cache: a second pass never calls the backbone, bad files are
reported and skipped, and a crash leaves the store readable."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aigi.backbones import load_backbone
from aigi.data.io import read_image
from aigi.features.cache import FeatureCache, FeatureStore

from .conftest import write_split


@pytest.fixture(scope="module")
def backbone():
    return load_backbone("random:tiny-clip").freeze()


def _count_calls(bb):
    calls = {"n": 0}

    def hook(module, args):
        calls["n"] += args[0].shape[0]

    return calls, bb.model.vision_model.embeddings.register_forward_pre_hook(hook)


def test_second_run_does_not_call_backbone(tmp_path, backbone):
    root = write_split(tmp_path / "d", 5, seed=0)
    paths = sorted(root.rglob("*.png"))
    calls, handle = _count_calls(backbone)
    try:
        first = FeatureCache(backbone, root=tmp_path / "c").extract(paths, keys=("embed", "cls"), batch_size=4)
        n_first = calls["n"]
        second = FeatureCache(backbone, root=tmp_path / "c").extract(paths, keys=("embed", "cls"), batch_size=4)
    finally:
        handle.remove()
    assert first.encoded == n_first == len(paths)
    assert second.encoded == 0 and calls["n"] == n_first, "the backbone ran again on cached images"
    for key in ("embed", "cls"):
        assert torch.equal(first.features[key], second.features[key])
    assert second.features["cls"].shape == (len(paths), backbone.num_layers, backbone.width)
    with torch.no_grad():
        direct = backbone.encode(backbone.preprocess([read_image(paths[0])]))
    assert torch.allclose(direct.embed[0], first.features["embed"][0], atol=1e-5)


def test_new_key_or_new_images_only_encode_what_is_missing(tmp_path, backbone):
    root = write_split(tmp_path / "d", 4, seed=1)
    paths = sorted(root.rglob("*.png"))
    cache = FeatureCache(backbone, root=tmp_path / "c")
    assert cache.extract(paths[:5], keys=("embed",)).encoded == 5
    assert cache.extract(paths, keys=("embed",)).encoded == len(paths) - 5
    assert cache.extract(paths, keys=("embed", "tokens@2")).encoded == len(paths)  # "tokens@2" was never stored


def test_identical_bytes_share_a_row_and_renames_hit(tmp_path, backbone):
    root = write_split(tmp_path / "d", 2, seed=2)
    src = sorted(root.rglob("*.png"))[0]
    copy = tmp_path / "renamed copy.png"
    copy.write_bytes(src.read_bytes())
    cache = FeatureCache(backbone, root=tmp_path / "c")
    res = cache.extract([src, copy])
    assert res.encoded == 1 and torch.equal(res.features["embed"][0], res.features["embed"][1])


def test_bad_files_reported_and_skipped(tmp_path, backbone):
    root = write_split(tmp_path / "d", 2, seed=3)
    good = sorted(root.rglob("*.png"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(good[0].read_bytes()[:60])
    missing = tmp_path / "missing.png"
    res = FeatureCache(backbone, root=tmp_path / "c").extract([good[0], broken, missing, good[1]])
    assert res.kept == [0, 3]
    assert res.features["embed"].shape[0] == 2
    causes = dict(res.errors)
    assert set(causes) == {str(broken), str(missing)}
    assert causes[str(missing)] == "file not found"
    assert all("\n" not in c for c in causes.values())


def test_torn_index_line_is_ignored(tmp_path):
    store = FeatureStore(tmp_path / "s")
    store.add(["a", "b"], torch.arange(6.0).view(2, 3))
    with open(store.index_path, "a") as fh:
        fh.write('{"hash": "c", "sha')  # a crash in the middle of a write
    reopened = FeatureStore(tmp_path / "s")
    assert len(reopened) == 2 and "c" not in reopened
    assert torch.equal(reopened.get(["b", "a"]), torch.tensor([[3.0, 4, 5], [0, 1, 2]]))


def test_namespace_separates_backbones(tmp_path, backbone):
    other = load_backbone("random:tiny-clip@1")
    assert FeatureCache(backbone, root=tmp_path).dir != FeatureCache(other, root=tmp_path).dir


def test_prefix_tokens_are_cached_in_half_precision(tmp_path, backbone):
    root = write_split(tmp_path / "d", 2, seed=4)
    paths = sorted(root.rglob("*.png"))
    cache = FeatureCache(backbone, root=tmp_path / "c")
    res = cache.extract(paths, keys=("tokens@2",))
    assert res.features["tokens@2"].dtype == torch.float16  # 197 x 768 per image for ViT-B/16: kept half
    with torch.no_grad():
        ref = backbone.encode(backbone.preprocess([read_image(p) for p in paths]), block_inputs=[2], embed=False)
    assert torch.allclose(res.features["tokens@2"].float(), ref.block_inputs[2], atol=1e-2, rtol=1e-2)
    assert cache.store("tokens@2").dtype == torch.float16
    with pytest.raises(ValueError, match="unknown feature"):
        cache.store("patches")


def test_one_pass_stores_embed_and_cls_for_the_next_detector(tmp_path, backbone):
    root = write_split(tmp_path / "d", 2, seed=5)
    paths = sorted(root.rglob("*.png"))
    cache = FeatureCache(backbone, root=tmp_path / "c")
    assert cache.extract(paths, keys=("embed",)).encoded == len(paths)
    assert cache.extract(paths, keys=("cls",)).encoded == 0  # LTD after UnivFD: nothing to encode


def _writer(root: str, name: str, rounds: int) -> None:
    """One process filling the shared store: rows whose values encode (writer, round, row)."""
    store = FeatureStore(Path(root))
    for r in range(rounds):
        hashes = [f"{name}-{r}-{i}" for i in range(40)]
        store.add(hashes, torch.tensor([[float(ord(name[0])), r, i] for i in range(40)]))


def test_many_processes_fill_one_store_without_losing_a_row(tmp_path):
    """Three processes write into the same store at once (as DDP ranks or Ray workers would);
    a reader afterwards sees every row with its own values, and an older single index is still read."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path / "s"), name, 15)) for name in ("a", "b", "c")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = FeatureStore(tmp_path / "s")
    assert len(store) == 3 * 15 * 40
    got = store.get(["b-7-3", "c-14-39", "a-0-0"])
    assert torch.equal(got, torch.tensor([[98.0, 7, 3], [99.0, 14, 39], [97.0, 0, 0]]))
    assert len(list((tmp_path / "s").glob("index-*.jsonl"))) == 3
    legacy = tmp_path / "s" / "index.jsonl"  # a cache written before per-writer indexes
    shard = next((tmp_path / "s").glob("shard-*.safetensors")).name
    legacy.write_text(json.dumps({"hash": "old", "shard": shard, "row": 0}) + "\n")
    assert "old" in FeatureStore(tmp_path / "s")
