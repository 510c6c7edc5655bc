"""The plain-torch CLIP tower (aigi.backbones.native_clip) against transformers' CLIP vision
model: the same state dict, the same outputs block by block; and the embedded tower built
without importing transformers (its import alone is most of detect's start-up)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from aigi.backbones.clip import ClipVisionBackbone
from aigi.backbones.native_clip import ClipVisionShape, assemble
from aigi.backbones.preprocess import PreprocessSpec
from aigi.errors import InputError

SHAPES = [
    dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
         patch_size=8, projection_dim=16, hidden_act="quick_gelu"),
    dict(hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=3, image_size=48,
         patch_size=16, projection_dim=24, hidden_act="gelu", layer_norm_eps=1e-6),
]


def _pair(shape: dict, seed: int) -> tuple[ClipVisionBackbone, ClipVisionBackbone]:
    torch.manual_seed(seed)
    ref = CLIPVisionModelWithProjection(CLIPVisionConfig(**shape)).eval()
    with torch.no_grad():  # init leaves the norms at 1/0: make them matter
        for name, p in ref.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    native = assemble(ClipVisionShape(**shape), {k: v.clone() for k, v in ref.state_dict().items()})
    spec = PreprocessSpec(size=shape["image_size"], crop=shape["image_size"])
    return (ClipVisionBackbone(native, spec, "native", "native"),
            ClipVisionBackbone(ref, spec, "transformers", "transformers"))


@pytest.mark.parametrize("shape", SHAPES, ids=["quick_gelu", "gelu"])
def test_same_outputs_as_transformers(shape):
    native, ref = _pair(shape, seed=0)
    x = torch.randn(3, 3, shape["image_size"], shape["image_size"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = native.encode(x, layers="all", tokens=True)
        theirs = ref.encode(x, layers="all", tokens=True)
        full = ref.model(pixel_values=x, output_hidden_states=True)
    assert torch.allclose(ours.cls_per_layer, theirs.cls_per_layer, atol=1e-5)
    assert torch.allclose(ours.tokens, full.hidden_states[-1], atol=1e-5)
    assert torch.allclose(ours.embed, full.image_embeds, atol=1e-5)
    assert ours.embed.shape == (3, shape["projection_dim"])
    assert native.width == shape["hidden_size"] and native.embed_dim == shape["projection_dim"]


def test_same_state_dict_names_and_trainable_like_transformers():
    native, ref = _pair(SHAPES[0], seed=2)
    assert native.model.state_dict().keys() == ref.model.state_dict().keys()
    # adapters wrap these by name (LoRA on q/v, MoLE on mlp): a gradient must reach them
    x = torch.randn(2, 3, 32, 32)
    native.encode(x).embed.sum().backward()
    block = native.blocks[-1]
    assert block.self_attn.q_proj.weight.grad is not None and block.mlp.fc1.weight.grad is not None


def test_batch_size_is_not_baked_into_a_trace():
    native, _ = _pair(SHAPES[0], seed=3)
    traced = torch.jit.trace(native.model.vision_model.embeddings, torch.randn(1, 3, 32, 32))
    assert traced(torch.randn(2, 3, 32, 32)).shape[0] == 2


def test_config_json_read_and_checked(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**SHAPES[0], "initializer_factor": 1.0, "model_type": "clip_vision_model"}))
    assert ClipVisionShape.from_json(path) == ClipVisionShape(**SHAPES[0])
    path.write_text(json.dumps({**SHAPES[0], "hidden_act": "silu"}))
    with pytest.raises(InputError, match="config.json: hidden_act 'silu'"):
        ClipVisionShape.from_json(path)


@pytest.mark.slow
def test_embedded_tower_loads_without_transformers(embedded_backbone):
    code = ("import sys, torch; from aigi.backbones import load_backbone; b = load_backbone('embedded'); "
            "b(torch.zeros(1, 3, 224, 224)); print(sorted(m for m in ('transformers', 'torch._dynamo') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    assert type(embedded_backbone.model).__module__ == "aigi.backbones.native_clip"
