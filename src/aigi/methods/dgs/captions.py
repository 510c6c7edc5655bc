"""Captions for DGS-Net's text branch: a file, a BLIP captioner, or a fixed prompt.

Captions are computed once per image content and kept in the cache
(``<cache>/captions/<source>.json``, keyed by the image's sha256), so a second
run never captions again.
"""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Sequence

from ...data.datasets import Sample
from ...data.io import file_sha256, read_image
from ...errors import InputError
from ...paths import cache_dir


def _from_file(path: Path) -> dict[str, str]:
    """path → caption from a CSV (``path,caption``) or JSONL file; relative paths resolve
    against the file's folder."""
    rows: list[dict] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = {}
    for i, row in enumerate(rows, start=2):
        if "path" not in row or "caption" not in row:
            raise InputError(f"{path}:{i}: a captions row needs 'path' and 'caption'")
        p = Path(row["path"])
        out[str((path.parent / p).resolve() if not p.is_absolute() else p)] = str(row["caption"])
    return out


def _blip(model_id: str):
    from transformers import BlipForConditionalGeneration, BlipProcessor

    try:
        processor = BlipProcessor.from_pretrained(model_id)
        model = BlipForConditionalGeneration.from_pretrained(model_id).eval()
    except (OSError, ValueError) as exc:  # not found, offline, or not a valid id/folder
        raise InputError(f"BLIP captioner '{model_id}' unavailable ({' '.join(str(exc).split())[:160]}); "
                         "use a captions file or the fixed prompt") from None

    def caption(paths: Sequence[Path]) -> list[str]:
        import torch

        images = [read_image(p) for p in paths]
        with torch.no_grad():
            ids = model.generate(**processor(images=images, return_tensors="pt"), max_new_tokens=30)
        return [processor.decode(row, skip_special_tokens=True) for row in ids]

    return caption


def captions_for(samples: Sequence[Sample], source: str, batch_size: int = 16) -> list[str]:
    """One caption per sample. ``source``: ``"prompt:<text>"`` (the documented fallback:
    every image gets the same caption), ``"file:<path>"``, or ``"blip:<hub id or folder>"``."""
    kind, _, value = source.partition(":")
    if kind == "prompt":
        return [value or "a photo"] * len(samples)
    if kind == "file":
        table = _from_file(Path(value))
        missing = [str(s.path) for s in samples if str(Path(s.path).resolve()) not in table]
        if missing:
            raise InputError(f"{value}: no caption for {missing[0]} (and {len(missing) - 1} more)")
        return [table[str(Path(s.path).resolve())] for s in samples]
    if kind != "blip":
        raise InputError(f"captions source '{source}' must start with prompt:, file: or blip:")
    store = cache_dir() / "captions" / (hashlib.sha256(source.encode()).hexdigest()[:16] + ".json")
    known: dict[str, str] = json.loads(store.read_text()) if store.exists() else {}
    hashes = [file_sha256(s.path) for s in samples]
    todo = [i for i, h in enumerate(hashes) if h not in known]
    if todo:
        caption = _blip(value)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            for i, text in zip(chunk, caption([samples[i].path for i in chunk])):
                known[hashes[i]] = text
            store.parent.mkdir(parents=True, exist_ok=True)
            store.write_text(json.dumps(known))
    return [known[h] for h in hashes]
