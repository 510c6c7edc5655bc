"""Our pre-processing against the models' own transformers image processors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aigi.backbones import ARCHITECTURES
from aigi.backbones.preprocess import PreprocessSpec, preprocess
from aigi.data.io import read_image

from .conftest import cifake_files


def _images():
    rng = np.random.default_rng(0)
    sizes = [(37, 53), (300, 200), (224, 224), (500, 333), (31, 31)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


def _reference(processor, images) -> torch.Tensor:
    return torch.from_numpy(np.asarray(processor(images, return_tensors="np")["pixel_values"]))


@pytest.mark.parametrize("arch", ["clip-vit-b16", "siglip-base-patch16-224", "siglip-so400m-patch14-384"])
def test_parity_with_transformers_processor(arch):
    from transformers import CLIPImageProcessor, SiglipImageProcessor

    spec = ARCHITECTURES[arch].preprocess
    if spec.resize_mode == "shortest_edge":
        ref_proc = CLIPImageProcessor(size={"shortest_edge": spec.size}, crop_size={"height": spec.crop, "width": spec.crop})
    else:
        ref_proc = SiglipImageProcessor(size={"height": spec.size, "width": spec.size})
    images = _images() + [read_image(p) for p, _ in cifake_files("test", 4)]
    ours = preprocess(images, spec)
    ref = _reference(ref_proc, images)
    diff = (ours - ref).abs().max().item()
    print(f"{arch}: max abs difference to the transformers processor = {diff:.3g} over {len(images)} images")
    assert ours.shape == ref.shape == (len(images), 3, spec.output_size, spec.output_size)
    assert diff < 1e-5


def test_spec_from_processor_config_and_fingerprint():
    clip = PreprocessSpec.from_hf_processor_config({
        "size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
        "resample": 3, "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]})
    assert clip == ARCHITECTURES["clip-vit-b16"].preprocess
    siglip = PreprocessSpec.from_hf_processor_config({"size": {"height": 384, "width": 384}, "resample": 3,
                                                      "image_mean": [0.5] * 3, "image_std": [0.5] * 3})
    assert siglip == ARCHITECTURES["siglip-so400m-patch14-384"].preprocess
    assert clip.fingerprint() != siglip.fingerprint()


def test_empty_batch():
    assert preprocess([], ARCHITECTURES["tiny-clip"].preprocess).shape == (0, 3, 32, 32)
