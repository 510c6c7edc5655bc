"""Backbones built from configs: shapes, one-pass layer outputs, early exit,
agreement with the transformers models they wrap, and parameter counts."""
from __future__ import annotations

import pytest
import torch

from aigi.backbones import (
    ARCHITECTURES,
    list_backbones,
    load_backbone,
    load_text_backbone,
)


@pytest.fixture(scope="module", params=["random:tiny-clip", "random:tiny-siglip"])
def tiny(request):
    return load_backbone(request.param).freeze()


def _pixels(bb, n=3, seed=0):
    s = bb.preprocess_spec.output_size
    return torch.randn(n, 3, s, s, generator=torch.Generator().manual_seed(seed))


def test_encode_shapes_and_all_layers(tiny):
    out = tiny.encode(_pixels(tiny), layers="all", tokens=True)
    assert out.cls_per_layer.shape == (3, tiny.num_layers, tiny.width)
    assert out.tokens.shape[0] == 3 and out.tokens.shape[-1] == tiny.width
    assert out.embed.shape == (3, tiny.embed_dim)
    assert out.layers == tuple(range(tiny.num_layers))


def test_layers_match_transformers_hidden_states(tiny):
    x = _pixels(tiny)
    ours = tiny.encode(x, layers="all", tokens=True)
    ref = tiny.model(pixel_values=x, output_hidden_states=True)
    # hidden_states[0] is the embedding output; [i+1] the output of block i
    for i in range(tiny.num_layers):
        assert torch.allclose(ours.cls_per_layer[:, i], tiny.layer_summary(ref.hidden_states[i + 1]), atol=1e-5)
    final = ref.image_embeds if tiny.family == "clip" else ref.pooler_output
    assert torch.allclose(ours.embed, final, atol=1e-5)


def test_selected_layers_and_negative_indices(tiny):
    x = _pixels(tiny)
    full = tiny.encode(x, layers="all")
    some = tiny.encode(x, layers=[0, -1])
    assert some.layers == (0, tiny.num_layers - 1)
    assert torch.equal(some.cls_per_layer[:, 0], full.cls_per_layer[:, 0])
    assert torch.equal(some.cls_per_layer[:, 1], full.cls_per_layer[:, -1])


def test_early_exit_stops_and_agrees(tiny):
    x = _pixels(tiny)
    calls = []
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: calls.append(k)) for k, b in enumerate(tiny.blocks)]
    try:
        early = tiny.encode(x, layers=[0, 1], embed=False)
    finally:
        for h in hooks:
            h.remove()
    assert calls == [0, 1], "blocks after the last requested layer must not run"
    assert early.embed is None
    full = tiny.encode(x, layers="all")
    assert torch.equal(early.cls_per_layer, full.cls_per_layer[:, :2])
    with pytest.raises(ValueError, match="stops after block 0"):
        tiny.encode(x, layers=[2], stop_after=0)


def test_random_weights_are_seeded():
    a = load_backbone("random:tiny-clip@3")
    b = load_backbone("random:tiny-clip@3")
    c = load_backbone("random:tiny-clip@4")
    wa, wb, wc = (m.blocks[0].mlp.fc1.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert a.fingerprint == "random:tiny-clip@3" != c.fingerprint


@pytest.mark.parametrize("arch,params,layers,width", [
    ("clip-vit-b16", 86_192_640, 12, 768),   # the same count as the converted OpenAI weights
    ("clip-vit-b32", 87_849_216, 12, 768),
    ("siglip-base-patch16-224", 92_884_224, 12, 768),
])
def test_true_architectures(arch, params, layers, width):
    bb = load_backbone(f"random:{arch}")
    assert (bb.parameter_count(), bb.num_layers, bb.width) == (params, layers, width)


def test_architecture_table_covers_the_papers():
    for name in ["clip-vit-b32", "clip-vit-b16", "clip-vit-l14", "siglip-base-patch16-224",
                 "siglip-so400m-patch14-384", "clip-text-b16", "clip-text-l14", "tiny-clip", "tiny-siglip"]:
        assert name in ARCHITECTURES
    l14 = ARCHITECTURES["clip-vit-l14"].make_config()
    assert (l14.hidden_size, l14.num_hidden_layers, l14.patch_size, l14.projection_dim) == (1024, 24, 14, 768)
    so400m = ARCHITECTURES["siglip-so400m-patch14-384"].make_config()
    assert (so400m.hidden_size, so400m.num_hidden_layers, so400m.image_size) == (1152, 27, 384)
    assert ARCHITECTURES["siglip-so400m-patch14-384"].preprocess.output_size == 384


def test_text_tower_random_weights():
    text = load_text_backbone("random:tiny-clip-text")
    with torch.no_grad():
        emb = text.encode(["a photo of a cat", "an AI-generated image", "a photo of a cat"])
    assert emb.shape == (3, text.embed_dim)
    assert torch.allclose(emb[0], emb[2]) and not torch.allclose(emb[0], emb[1])


def test_text_spec_rejected_as_vision():
    with pytest.raises(ValueError, match="text tower"):
        load_backbone("random:tiny-clip-text")


def test_listing_names_every_architecture():
    specs = {r["spec"] for r in list_backbones()}
    assert "embedded" in specs and "random:clip-vit-l14" in specs and "openai/clip-vit-large-patch14" in specs


@pytest.mark.parametrize("arch", ["tiny-clip", "tiny-siglip"])
def test_load_from_local_directory(tmp_path, arch):
    """The hub-id / local-folder path: a saved model folder loads with its own processor config."""
    import json

    src = load_backbone(f"random:{arch}@7")
    src.model.save_pretrained(tmp_path)
    spec = src.preprocess_spec
    proc = {"size": {"shortest_edge": spec.size}, "crop_size": {"height": spec.crop, "width": spec.crop},
            "do_center_crop": True} if spec.resize_mode == "shortest_edge" else {"size": {"height": spec.size, "width": spec.size}}
    proc.update(resample=3, image_mean=list(spec.mean), image_std=list(spec.std))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(proc))
    loaded = load_backbone(str(tmp_path))
    assert loaded.family == src.family and loaded.preprocess_spec == spec
    assert loaded.fingerprint.startswith("dir:")
    x = _pixels(src)
    with torch.no_grad():
        assert torch.allclose(loaded.encode(x).embed, src.encode(x).embed, atol=1e-6)


def test_not_a_clip_or_siglip_folder(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not a CLIP or SigLIP"):
        load_backbone(str(tmp_path))


def test_block_inputs_and_forward_from_prefix(tiny):
    x = _pixels(tiny)
    full = tiny.encode(x, layers="all")
    prefix = tiny.encode(x, block_inputs=[2], embed=False)
    assert set(prefix.block_inputs) == {2} and prefix.embed is None
    assert torch.allclose(tiny.forward_from(prefix.block_inputs[2], 2), full.embed, atol=1e-5)
    first = tiny.encode(x, block_inputs=[0], embed=False)  # runs no block at all
    assert torch.allclose(first.block_inputs[0], tiny.embed_tokens(x))
