"""Caption sources for DGS-Net: fixed prompt, captions file, BLIP failure message."""
from __future__ import annotations

import pytest

from aigi.data.datasets import load_dataset
from aigi.methods.dgs.captions import captions_for


def test_prompt_fallback_and_captions_file(tiny_data, tmp_path):
    ds = load_dataset(tiny_data / "val")
    samples = ds.samples[:3]
    assert captions_for(samples, "prompt:a photo of something") == ["a photo of something"] * 3
    table = tmp_path / "caps.csv"
    table.write_text("path,caption\n" + "".join(f"{s.path},caption {i}\n" for i, s in enumerate(samples)))
    assert captions_for(samples, f"file:{table}") == ["caption 0", "caption 1", "caption 2"]
    jsonl = tmp_path / "caps.jsonl"
    jsonl.write_text("".join(f'{{"path": "{s.path}", "caption": "c{i}"}}\n' for i, s in enumerate(samples[:2])))
    with pytest.raises(ValueError, match="no caption for"):
        captions_for(samples, f"file:{jsonl}")
    with pytest.raises(ValueError, match="must start with"):
        captions_for(samples, "whisper:x")


def test_blip_unavailable_is_a_clear_error(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AIGI_CACHE_DIR", str(tmp_path))
    samples = load_dataset(tiny_data / "val").samples[:1]
    with pytest.raises(ValueError, match="BLIP captioner .* unavailable"):
        captions_for(samples, f"blip:{tmp_path / 'no-such-model'}")
