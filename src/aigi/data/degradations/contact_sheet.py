"""A contact sheet: every degradation at three severities, one row each."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from . import get, names


def contact_sheet(image: Image.Image, out: Path, severities: Sequence[float] = (0.33, 0.66, 1.0),
                  tile: int = 128, seed: int = 0) -> Path:
    """Rows: algorithms (grouped by category); columns: the input, then each severity."""
    base = np.asarray(image.convert("RGB").resize((tile, tile), Image.Resampling.BICUBIC))
    ops = sorted(names(), key=lambda n: (get(n).category, n))
    label_w, head_h = 170, 22
    sheet = Image.new("RGB", (label_w + tile * (1 + len(severities)), head_h + tile * len(ops)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(["input", *(f"severity {s:g}" for s in severities)]):
        draw.text((label_w + c * tile + 4, 4), title, fill="black")
    for r, name in enumerate(ops):
        op = get(name)
        y = head_h + r * tile
        draw.text((4, y + tile // 2 - 12), f"{name}\n({op.category})", fill="black")
        sheet.paste(Image.fromarray(base), (label_w, y))
        for c, sev in enumerate(severities, start=1):
            out_img = op(base, float(sev), np.random.default_rng(seed))
            sheet.paste(Image.fromarray(out_img), (label_w + c * tile, y))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
