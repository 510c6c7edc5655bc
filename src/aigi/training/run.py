"""``aigi train``: a recipe in, a run directory out.

The run directory holds everything needed to use and to audit the result:
``detector/`` (safetensors + JSON config), ``config.yaml`` (the resolved recipe),
``metrics.json`` (validation metrics, with the threshold tuned there),
``val_predictions.csv`` and ``train.log``.
"""
from __future__ import annotations

import csv
import json
import random
import time
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from ..backbones import DEFAULT_BACKBONE, load_backbone
from ..config import ConfigError, merge
from ..data.datasets import ImageDataset, Sample, load_dataset
from ..detectors.base import Detector
from ..eval.calibration import fit as fit_calibration
from ..eval.metrics import score, tune_threshold
from ..registry import DETECTORS
from ..data.augment import Augmentations
from .feature_cache import FeatureCache
from .finetune import train_pixels

DEFAULTS: dict[str, Any] = {
    "detector": "univfd",
    "backbone": DEFAULT_BACKBONE,
    "params": {},
    "data": {"train": None, "val": None, "val_fraction": 0.1, "subset_depth": 1, "limit_per_class": None},
    "train": {"epochs": 50, "batch_size": 256, "lr": 1e-3, "weight_decay": 0.0, "seed": 0, "workers": 0,
              "from_pixels": False, "resume": False, "checkpoint_every": 0, "keep_best": True,
              "precision": "fp32"},
    "augment": {"blur_prob": 0.0, "blur_sigma": [0.0, 3.0], "jpeg_prob": 0.0, "jpeg_quality": [30, 100],
                "policy": {"prob": 0.0, "max_ops": 1, "categories": [], "severity": [0.1, 1.0], "exclude": []}},
    "features": {"batch_size": 32, "cache_dir": None},
    "calibration": "none",  # or "temperature" / "platt", fitted on the validation split
    "device": "cpu",
    "output": "runs/{detector}",
}


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        value = config.get(key, default)
        out[key] = merge(default, value or {}) if isinstance(default, dict) else value
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    return out


def split_validation(ds: ImageDataset, fraction: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """Stratified (subset × label) hold-out, deterministic for a seed."""
    rng = random.Random(seed)
    train: list[Sample] = []
    val: list[Sample] = []
    groups: dict[tuple[str, int], list[Sample]] = {}
    for s in ds.samples:
        groups.setdefault((s.subset, s.label), []).append(s)
    for key in sorted(groups):
        items = groups[key][:]
        rng.shuffle(items)
        n_val = max(1, int(round(len(items) * fraction))) if len(items) > 1 else 0
        val.extend(items[:n_val])
        train.extend(items[n_val:])
    return ImageDataset(ds.name, sorted(train, key=_order)), ImageDataset(ds.name + "-val", sorted(val, key=_order))


def _order(s: Sample) -> tuple:
    return (s.subset, s.label, str(s.path))


class RunLog:
    """Writes to ``train.log`` and echoes to the console."""

    def __init__(self, path: Path, echo: Callable[[str], None] | None = print) -> None:
        self.path, self.echo, self.t0 = path, echo, time.time()
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, message: str) -> None:
        line = f"[{time.time() - self.t0:7.1f}s] {message}"
        with open(self.path, "a") as fh:
            fh.write(line + "\n")
        if self.echo:
            self.echo(line)


def _features(cache: FeatureCache, ds: ImageDataset, key: str, batch_size: int, log, progress_factory):
    bar = progress_factory(len(ds), f"features {ds.name}") if progress_factory else None
    result = cache.extract(ds.paths, keys=(key,), batch_size=batch_size, progress=bar.update if bar else None)
    if bar:
        bar.close()
    for path, cause in result.errors:
        log(f"skipped {path}: {cause}")
    log(f"{ds.name}: {len(result.kept)} images, {result.encoded} encoded now, {len(result.kept) - result.encoded} from cache")
    labels = torch.tensor([ds.samples[i].label for i in result.kept], dtype=torch.float32)
    samples = [ds.samples[i] for i in result.kept]
    return result.features[key], labels, samples


def build_detector(config: dict[str, Any], backbone=None) -> Detector:
    """The recipe's detector; sizes it needs from the backbone are read off it."""
    cls = DETECTORS.get(config["detector"])
    params = {**(cls.backbone_params(backbone) if backbone is not None else {}), **(config.get("params") or {})}
    spec = backbone if (cls.embeds_backbone and backbone is not None) else config["backbone"]
    try:
        return cls(backbone=spec, **params)
    except TypeError as exc:
        raise ConfigError(f"detector '{config['detector']}': bad params {params} ({exc})") from None


def train(config: dict[str, Any], progress_factory=None, echo: Callable[[str], None] | None = print) -> Path:
    """Run a recipe; returns the run directory."""
    if config.get("experts"):
        from .ensemble_recipe import train_ensemble

        return train_ensemble(config, train, progress_factory, echo)
    cfg = with_defaults(config)
    if not cfg["data"].get("train"):
        raise ConfigError("data.train is required (a folder with 0_real/1_fake, or a CSV/JSONL manifest)")
    out = Path(str(cfg["output"]).format(detector=cfg["detector"]))
    out.mkdir(parents=True, exist_ok=True)
    if not cfg["train"].get("resume"):
        (out / "train.log").write_text("")
    log = RunLog(out / "train.log", echo)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    torch.manual_seed(int(cfg["train"]["seed"]))

    data = cfg["data"]
    train_ds = load_dataset(data["train"], subset_depth=int(data["subset_depth"]))
    if data.get("val"):
        val_ds = load_dataset(data["val"], subset_depth=int(data["subset_depth"]))
    else:
        train_ds, val_ds = split_validation(train_ds, float(data["val_fraction"]), int(cfg["train"]["seed"]))
    if data.get("limit_per_class"):
        train_ds = train_ds.limit_per_class(int(data["limit_per_class"]), seed=int(cfg["train"]["seed"]))
        val_ds = val_ds.limit_per_class(int(data["limit_per_class"]), seed=int(cfg["train"]["seed"]))
    log(f"train: {train_ds.counts()}  val: {val_ds.counts()}")

    backbone = load_backbone(cfg["backbone"], device=cfg["device"]).freeze()
    detector = build_detector(cfg, backbone).to(cfg["device"])
    if detector._backbone is None:
        detector.attach_backbone(backbone)
    report = detector.parameter_report()
    log(f"parameters: {report['trainable']:,} trainable of {report['total']:,} "
        f"({100 * report['trainable_share_of_vision_tower']:.3f} % of the vision tower)")
    if cfg["train"].get("resume") and not detector.resumable:
        log(f"note: '{cfg['detector']}' training keeps no checkpoint; --resume starts it from the beginning")
    key = detector.cache_point()
    augment = Augmentations.from_config(cfg["augment"])
    t0 = time.time()
    cache_root = cfg["features"].get("cache_dir")
    cache = FeatureCache(backbone, root=Path(cache_root) if cache_root else None) if key is not None else None
    fb = int(cfg["features"]["batch_size"])
    if hasattr(detector, "fit_pixels"):  # a method with a trainer of its own (teachers, surgery, stages)
        log("training from pixels with the method's own trainer")
        settings = {**cfg["train"], "checkpoint_dir": str(out / "checkpoint")}
        summary = detector.fit_pixels(train_ds.samples, val_ds.samples, settings, augment, log, progress_factory)
        fit_seconds = time.time() - t0
        if cache is not None:
            xva, yva, val_samples = _features(cache, val_ds, key, fb, log, progress_factory)
            logits = detector.logits_from_features(xva)
        else:
            preds = detector.predict([str(s.path) for s in val_ds.samples], batch_size=fb)
            val_samples = [s for s, p in zip(val_ds.samples, preds) if p.error is None]
            yva = torch.tensor([s.label for s in val_samples], dtype=torch.float32)
            logits = torch.logit(torch.tensor([p.prob_fake for p in preds if p.error is None]).clamp(1e-7, 1 - 1e-7))
            xva = None
    elif cache is None:
        raise ConfigError(f"detector '{cfg['detector']}' has no frozen part to cache and no trainer of its own")
    else:
        xva, yva, val_samples = _features(cache, val_ds, key, fb, log, progress_factory)
        if augment.active or cfg["train"].get("from_pixels"):
            log(f"training from pixels (augmentation: {augment.active}): every epoch runs the backbone on every image")
            summary = train_pixels(detector, train_ds.samples, xva, yva, cfg["train"], augment, log, progress_factory)
        else:
            xtr, ytr, _ = _features(cache, train_ds, key, fb, log, progress_factory)
            summary = detector.fit_features(xtr, ytr, xva, yva, cfg["train"], log)
        fit_seconds = time.time() - t0
        logits = detector.logits_from_features(xva)
    if cfg["calibration"] not in (None, "none"):
        detector.calibration = fit_calibration(logits, yva, cfg["calibration"])
        log(f"calibration on validation: {detector.calibration}")
    probs = detector.to_probability(logits)
    detector.threshold = tune_threshold(yva.int().tolist(), probs.tolist())
    detector.metadata = {
        "trained_on": str(data["train"]),
        "validated_on": str(data["val"] or f"{data['val_fraction']:.0%} of train"),
        "train_counts": train_ds.counts(),
        "threshold_source": "validation split (max mean of real/fake accuracy)",
    }
    metrics = score(yva.int().tolist(), probs.tolist(), detector.threshold)
    if xva is not None:
        for path in detector.write_report(out / "report", xva, yva, summary.get("history", [])):
            log(f"report: {path}")
    log(f"validation: AP={metrics['ap']:.4f} AUC={metrics['auc']:.4f} acc@0.5={metrics['acc_mean@0.5']:.4f} "
        f"acc@val={metrics['acc_mean@val']:.4f} threshold={detector.threshold:.4f}")
    detector.save(out / "detector")
    (out / "metrics.json").write_text(json.dumps({
        "validation": metrics, "fit_seconds": round(fit_seconds, 3), "best_epoch": summary.get("best_epoch"),
        "history": summary.get("history", []),
    }, indent=2) + "\n")
    with open(out / "val_predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "subset", "label", "prob_fake"])
        for s, p in zip(val_samples, probs.tolist()):
            w.writerow([str(s.path), s.subset, s.label, f"{p:.6f}"])
    log(f"saved {out / 'detector'}")
    return out
