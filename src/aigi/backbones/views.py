"""Views: which pixels of an image the tower sees.

CLIP's own pre-processing (``resize``) scales the short side to 224 and crops the
centre. That is right for content, but it throws away what detectors of
generated images rely on: a 4,000 px photo is averaged 18× before the tower
sees it, while a 512 px SD image is scaled 2.3×, so the resampling factor, not
the generator, separates them. A native-resolution view crops the tower's input
size out of the image *before* any resize: every pixel the tower sees is a
pixel of the file.

- ``resize``: the tower's pre-processing, unchanged (the default; older detectors).
- ``crop``: one centre crop at native resolution.
- ``multicrop:K``: K native crops (centre, then the corners, then the edge
  midpoints of a 3 × 3 grid; K ≤ 9). A detector's score is the mean of the
  crops' logits; in training each crop is one more sample.
- ``crop@S``, ``multicrop:K@S``: the same after scaling an image whose short
  side exceeds S down to S (bicubic, antialiased; never up). A 224 px crop of a
  12 MP photo sees a few square centimetres of one surface; at S = 512 it sees
  a good part of the picture, after a modest resampling that is the same for
  every image larger than S.

Images whose short side is under the crop size are cropped to what they have,
and the tower's pre-processing scales that up as before (CIFAKE's 32 px images
see the same pixels in every view).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import ConfigError

MAX_CROPS = 9
# the 3 × 3 grid as (x, y) fractions of the free room: centre first, then corners, then edges
_POSITIONS = ((0.5, 0.5), (0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0),
              (0.5, 0.0), (0.5, 1.0), (0.0, 0.5), (1.0, 0.5))
_SYNTAX = re.compile(r"(resize|crop|multicrop:(\d+))(?:@(\d+))?")
MIN_LIMIT = 32


@dataclass(frozen=True)
class View:
    kind: str = "resize"
    crops: int = 1
    limit: int | None = None  # native views: an image's short side is first scaled down to this

    @classmethod
    def parse(cls, text: "str | View | None") -> "View":
        if isinstance(text, View):
            return text
        match = _SYNTAX.fullmatch(str(text or "resize").strip())
        if not match:
            raise ConfigError(f"unknown view '{text}' (valid: resize, crop, multicrop:K with 2 ≤ K ≤ {MAX_CROPS}; "
                              "crop@S and multicrop:K@S scale a short side over S px down to S first)")
        kind, k, limit = match.group(1), match.group(2), match.group(3)
        if limit is not None:
            if kind == "resize":
                raise ConfigError(f"view '{text}': resize already scales every image; @S caps crop and multicrop")
            if int(limit) < MIN_LIMIT:
                raise ConfigError(f"view '{text}': S must be at least {MIN_LIMIT} px, got {limit}")
        if k is None:
            return cls(kind, 1, None if limit is None else int(limit))
        if not 2 <= int(k) <= MAX_CROPS:
            raise ConfigError(f"view '{text}': K must lie in 2…{MAX_CROPS}, got {k}")
        return cls("multicrop", int(k), None if limit is None else int(limit))

    def __str__(self) -> str:
        name = f"multicrop:{self.crops}" if self.kind == "multicrop" else self.kind
        return name if self.limit is None else f"{name}@{self.limit}"

    @property
    def native(self) -> bool:
        return self.kind != "resize"

    def fit(self, image: Image.Image) -> Image.Image:
        """The image a native view crops from: as it is, or scaled down to the view's limit."""
        w, h = image.size
        if self.limit is None or min(w, h) <= self.limit:
            return image
        scale = self.limit / min(w, h)
        size = (self.limit, max(1, round(h * scale))) if w <= h else (max(1, round(w * scale)), self.limit)
        return image.resize(size, Image.Resampling.BICUBIC)

    def crop(self, image: Image.Image, index: int, size: int) -> Image.Image:
        """Crop ``index`` of this view (``size`` × ``size`` at native resolution, or what the image has)."""
        if not self.native:
            return image
        image = self.fit(image)
        w, h = image.size
        cw, ch = min(size, w), min(size, h)
        fx, fy = _POSITIONS[index]
        left, top = int(round((w - cw) * fx)), int(round((h - ch) * fy))
        return image.crop((left, top, left + cw, top + ch))

    def random_crop(self, image: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
        """A native crop at a uniformly drawn place (training samples of a native view)."""
        image = self.fit(image)
        w, h = image.size
        cw, ch = min(size, w), min(size, h)
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return image.crop((left, top, left + cw, top + ch))

    def apply(self, image: Image.Image, size: int) -> list[Image.Image]:
        """Every crop of ``image``; ``[image]`` for ``resize``."""
        return [self.crop(image, i, size) for i in range(self.crops)]

    def transforms(self, size: int, inner: Callable[[Image.Image, str], Image.Image] | None = None,
                   inner_id: str = "") -> list[tuple[Callable[[Image.Image, str], Image.Image] | None, str]]:
        """One (transform, transform id) per crop for the feature cache, after ``inner`` (a
        degradation or a training copy), so that every crop of every variant is cached apart."""
        if not self.native:
            return [(inner, inner_id)]
        out = []
        for i in range(self.crops):
            def transform(image: Image.Image, sha: str, i: int = i) -> Image.Image:
                return self.crop(inner(image, sha) if inner else image, i, size)
            # named by place and size, not by view: crop and multicrop:K share their centre crop
            fit = "" if self.limit is None else f"|fit{self.limit}"
            out.append((transform, f"{inner_id}{fit}|crop{size}@{_POSITIONS[i][0]},{_POSITIONS[i][1]}"))
        return out
