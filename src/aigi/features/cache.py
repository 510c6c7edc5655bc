"""On-disk cache of frozen-backbone outputs.

A frozen backbone gives the same features for the same pixels every time, and
on a CPU it is by far the slowest step (about 5 images/s for ViT-B/16), so its
outputs are computed once per (backbone weights, pre-processing, image bytes)
and kept. Each feature kind ("embed": final embedding, "cls": every block's CLS
summary) is an append-only store: safetensors shards plus index files that map
an image's sha256 to (shard, row), one index file per writer, so that many
processes can fill one cache at once. A shard is written and renamed into place
before its index lines are appended, so a crash loses at most the batch in
flight and never corrupts what is already there.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from ..backbones.base import VisionBackbone
from ..backbones.views import View
from ..data.io import ImageReadError, _os_cause, file_sha256, read_image
from ..errors import InputError
from ..paths import feature_cache_dir

FEATURE_KEYS = ("embed", "cls", "tokens@<block>")
_TOKENS = re.compile(r"tokens@(\d+)")


def check_key(key: str) -> int | None:
    """Validate a feature name; for ``tokens@k`` return ``k`` (the block those tokens enter)."""
    match = _TOKENS.fullmatch(key)
    if match:
        return int(match.group(1))
    if key not in ("embed", "cls"):
        raise InputError(f"unknown feature '{key}' (known: {', '.join(FEATURE_KEYS)})")
    return None


class FeatureStore:
    """One feature kind for one backbone: hash → row of a tensor."""

    def __init__(self, root: Path, dtype: torch.dtype = torch.float32) -> None:
        self.root = Path(root)
        self.dtype = dtype  # on disk and in memory: half-precision token maps stay half until used
        self.root.mkdir(parents=True, exist_ok=True)
        # Each writer appends to an index file of its own, so that many processes (DDP ranks, Ray
        # workers, two `aigi` commands) can fill one cache at once without interleaving lines;
        # readers merge every index file (and the single index.jsonl of older caches).
        self.index_path = self.root / f"index-{uuid.uuid4().hex[:12]}.jsonl"
        self._index: dict[str, tuple[str, int]] = {}
        self._shards: dict[str, torch.Tensor] = {}
        self._load_index()

    def _load_index(self) -> None:
        for path in sorted(self.root.glob("index*.jsonl")):
            with open(path) as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:  # a torn last line from a crash: ignore it
                        continue
                    if (self.root / rec["shard"]).exists():
                        self._index[rec["hash"]] = (rec["shard"], int(rec["row"]))

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def add(self, hashes: Sequence[str], values: torch.Tensor) -> None:
        if len(hashes) != values.shape[0]:
            raise ValueError("one row per hash")
        if not hashes:
            return
        shard = f"shard-{uuid.uuid4().hex[:12]}.safetensors"
        tmp = self.root / (shard + ".tmp")
        save_file({"values": values.detach().to("cpu", self.dtype).contiguous()}, str(tmp))
        os.replace(tmp, self.root / shard)
        with open(self.index_path, "a") as fh:
            fh.write("".join(json.dumps({"hash": h, "shard": shard, "row": i}) + "\n" for i, h in enumerate(hashes)))
            fh.flush()
        for i, h in enumerate(hashes):
            self._index[h] = (shard, i)

    def get(self, hashes: Sequence[str]) -> torch.Tensor:
        rows = []
        for h in hashes:
            shard, row = self._index[h]
            if shard not in self._shards:
                self._shards[shard] = load_file(str(self.root / shard))["values"]
            rows.append(self._shards[shard][row])
        return torch.stack(rows) if rows else torch.empty(0)


@dataclass
class ExtractResult:
    """Features for the readable images, in input order, and the failures."""

    features: dict[str, torch.Tensor]
    kept: list[int]  # indices into the input list that have features
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, one-line cause)
    encoded: int = 0  # images that went through the backbone in this call
    views: int = 1  # rows per kept image (a multi-crop view): features are image-major, crops adjacent


def _derived(file_hash: str, transform_id: str) -> str:
    return hashlib.sha256(f"{file_hash}|{transform_id}".encode()).hexdigest()


def backbone_namespace(backbone: VisionBackbone) -> str:
    blob = f"{backbone.fingerprint}|{backbone.preprocess_spec.fingerprint()}".encode()
    return hashlib.sha256(blob).hexdigest()[:20]


class FeatureCache:
    """Frozen features of one backbone, computed on demand and kept on disk."""

    def __init__(self, backbone: VisionBackbone, root: str | Path | None = None, flush_every: int = 256) -> None:
        self.backbone = backbone
        self.root = feature_cache_dir(root)
        self.dir = self.root / backbone_namespace(backbone)
        self.flush_every = flush_every
        self._stores: dict[str, FeatureStore] = {}
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "backbone.json"
        if not meta.exists():
            meta.write_text(json.dumps({"fingerprint": backbone.fingerprint, "name": backbone.name,
                                        "preprocess": backbone.preprocess_spec.fingerprint()}, indent=2))

    def store(self, key: str) -> FeatureStore:
        block = check_key(key)
        pristine = self.backbone.pristine_blocks
        needs = block if block is not None else self.backbone.num_layers
        if pristine is not None and needs > pristine:
            raise InputError(f"feature '{key}' passes through adapted blocks (from block {pristine} on): "
                             "it depends on trained weights and cannot be cached")
        if key not in self._stores:
            # token maps are large (197 × 768 per image for ViT-B/16): half precision on disk
            self._stores[key] = FeatureStore(self.dir / key, torch.float16 if block is not None else torch.float32)
        return self._stores[key]

    @torch.inference_mode()
    def _encode(self, images: torch.Tensor, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        device = next(self.backbone.parameters()).device
        pixels = images.to(device)
        blocks = {k: check_key(k) for k in keys}
        out = self.backbone.encode(pixels, layers="all" if "cls" in keys else None, embed="embed" in keys,
                                   block_inputs=[b for b in blocks.values() if b is not None])
        result = {}
        for key, block in blocks.items():
            if block is not None:
                result[key] = out.block_inputs[block]
            else:
                result[key] = out.embed if key == "embed" else out.cls_per_layer
        return result

    def extract(
        self,
        paths: Sequence[str | Path],
        keys: Iterable[str] = ("embed",),
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
        transform: Callable[[Image.Image, str], Image.Image] | None = None,
        transform_id: str = "",
    ) -> ExtractResult:
        """Features for ``paths``; only images missing from the cache are encoded.

        An unreadable file is reported in ``errors`` and skipped; ``progress`` is
        called with the number of images handled since the last call.
        ``transform(image, file_sha256)`` (e.g. a seeded degradation) changes the
        pixels before encoding; it must be deterministic, and ``transform_id``
        names it in the cache key, so a robustness sweep is cached like clean images.
        """
        keys = tuple(dict.fromkeys(keys))
        computed = keys
        if self.backbone.pristine_blocks is None and {"embed", "cls"} & set(keys):
            # one full pass yields both: keep both, so the next detector on this backbone hits the cache
            computed = tuple(dict.fromkeys((*keys, "embed", "cls")))
        stores = {k: self.store(k) for k in computed}
        hashes: list[str | None] = []
        errors: list[tuple[str, str]] = []
        file_hashes: list[str | None] = []
        for p in paths:
            try:
                file_hashes.append(file_sha256(p))
                hashes.append(_derived(file_hashes[-1], transform_id) if transform else file_hashes[-1])
            except OSError as exc:
                file_hashes.append(None)
                hashes.append(None)
                errors.append((str(p), _os_cause(exc)))
        missing = [i for i, h in enumerate(hashes) if h is not None and any(h not in stores[k] for k in keys)]
        done_now = len(hashes) - len(missing)
        if progress and done_now:
            progress(done_now)
        encoded = 0
        pending_h: list[str] = []
        pending_v: dict[str, list[torch.Tensor]] = {k: [] for k in computed}
        seen: set[str] = set()
        unprepared: dict[str, str] = {}  # hash → why it could not be prepared
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            images, chunk_hashes = [], []
            for i in chunk:
                h = hashes[i]
                if h in seen:  # identical bytes twice in the list: encode once
                    continue
                try:
                    image = read_image(paths[i])
                    images.append(transform(image, file_hashes[i]) if transform else image)
                    chunk_hashes.append(h)
                    seen.add(h)  # type: ignore[arg-type]
                except ImageReadError as exc:
                    errors.append((str(paths[i]), exc.cause))
                    hashes[i] = None
            pixels, ok, failed = self.backbone.prepare(images)
            for j, cause in failed.items():  # one image that cannot be prepared never fails the batch
                unprepared[chunk_hashes[j]] = cause
            chunk_hashes = [chunk_hashes[j] for j in ok]
            if len(pixels):
                feats = self._encode(pixels, computed)
                encoded += len(pixels)
                pending_h.extend(chunk_hashes)  # type: ignore[arg-type]
                for k in computed:
                    pending_v[k].append(feats[k].cpu())
            if len(pending_h) >= self.flush_every or start + batch_size >= len(missing):
                for k in computed:
                    if pending_h:
                        stores[k].add(pending_h, torch.cat(pending_v[k]))
                    pending_v[k] = []
                pending_h = []
            if progress:
                progress(len(chunk))
        for i, h in enumerate(hashes):
            if h in unprepared:  # every copy of those bytes
                errors.append((str(paths[i]), unprepared[h]))
                hashes[i] = None
        kept = [i for i, h in enumerate(hashes) if h is not None]
        features = {k: stores[k].get([hashes[i] for i in kept]) for k in keys}  # type: ignore[misc]
        return ExtractResult(features, kept, errors, encoded)

    def extract_view(
        self,
        paths: Sequence[str | Path],
        view: View | str | None,
        keys: Iterable[str] = ("embed",),
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
        transform: Callable[[Image.Image, str], Image.Image] | None = None,
        transform_id: str = "",
    ) -> ExtractResult:
        """Like :meth:`extract`, through a detector's view: every crop is cached under its own
        key, and an image is kept only if all its crops were. Features come image-major, the
        crops of one image adjacent (``views`` rows each)."""
        view = View.parse(view)
        size = self.backbone.preprocess_spec.output_size
        if not view.native:
            return self.extract(paths, keys, batch_size, progress, transform, transform_id)
        keys = tuple(dict.fromkeys(keys))
        passes = view.transforms(size, transform, transform_id)
        # an image no larger than the crop is its own crop in every place: it shares the plain
        # cache key (a CIFAKE thumbnail is encoded once for every view), unless the view scales
        # images down below the crop size first
        unscaled = view.limit is None or view.limit >= size
        whole = set(_fits(paths, size)) if transform is None and unscaled else set()
        big = {i: n for n, i in enumerate(i for i in range(len(paths)) if i not in whole)}
        small = {i: n for n, i in enumerate(sorted(whole))}
        tick = _Scaled(progress, len(passes))
        results = [self.extract([paths[i] for i in big], keys, batch_size, tick, fn, tid) for fn, tid in passes]
        plain = self.extract([paths[i] for i in small], keys, batch_size, progress)
        row_of = [{local: n for n, local in enumerate(r.kept)} for r in results]
        plain_row = {local: n for n, local in enumerate(plain.kept)}
        kept, picks = [], []  # per kept image: (result, row) for each crop
        for i in range(len(paths)):
            if i in small:
                rows = [plain_row.get(small[i])] * len(passes)
                pick = list(zip([plain] * len(passes), rows))
            else:
                rows = [r.get(big[i]) for r in row_of]
                pick = list(zip(results, rows))
            if None not in rows:
                kept.append(i)
                picks.append(pick)
        features = {key: torch.stack([r.features[key][n] for pick in picks for r, n in pick]) if picks
                    else torch.empty(0) for key in keys}
        errors = list(dict.fromkeys(e for r in (*results, plain) for e in r.errors))
        return ExtractResult(features, kept, errors, sum(r.encoded for r in (*results, plain)), len(passes))


def _fits(paths: Sequence[str | Path], size: int) -> list[int]:
    """Indices of the images whose both sides are at most ``size`` (header only; unreadable: no)."""
    out = []
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                if max(im.size) <= size:
                    out.append(i)
        except Exception:  # extract() reports why it cannot be read
            continue
    return out


class _Scaled:
    """Progress over several passes of the same images, reported in images."""

    def __init__(self, progress: Callable[[int], None] | None, passes: int) -> None:
        self.progress, self.passes, self.count = progress, passes, 0

    def __call__(self, n: int) -> None:
        before = self.count // self.passes
        self.count += n
        if self.progress and self.count // self.passes > before:
            self.progress(self.count // self.passes - before)
