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

from ..backbones import load_backbone
from ..backbones.views import View
from ..config.recipe import Recipe, load_recipe
from ..data.augment import Augmentations
from ..data.datasets import ImageDataset, Sample, load_dataset
from ..detectors import Detector
from ..detectors.calibration import fit as fit_calibration
from ..detectors.operating import record as record_operating_points
from ..devices import check_device
from ..errors import ConfigError
from ..eval.metrics import score, tune_threshold
from ..locks import exclusive
from ..registry import DETECTORS, REPORTS, TRAINERS
from .checkpoint import has_checkpoint
from .distributed import device_for, make_accelerator
from .trainer import BALANCING_TRAINERS, TrainContext


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


def build_detector(recipe: Recipe, backbone=None) -> Detector:
    """The recipe's detector; sizes it needs from the backbone are read off it."""
    cls = DETECTORS.get(recipe.detector)
    params = {**(cls.backbone_params(backbone) if backbone is not None else {}), **recipe.params}
    spec = backbone if (cls.embeds_backbone and backbone is not None) else recipe.backbone
    return cls(backbone=spec, **params)


def _datasets(recipe: Recipe, log) -> tuple[ImageDataset, ImageDataset]:
    data, seed = recipe.data, recipe.train.seed
    train_ds = load_dataset(data.train, subset_depth=data.subset_depth)
    if data.val:
        val_ds = load_dataset(data.val, subset_depth=data.subset_depth)
    else:
        train_ds, val_ds = split_validation(train_ds, data.val_fraction, seed)
    if data.exclude:
        train_ds, val_ds = (_without(ds, data.exclude, log) for ds in (train_ds, val_ds))
    if data.limit_per_class:
        train_ds = train_ds.limit_per_class(data.limit_per_class, seed=seed)
        val_ds = val_ds.limit_per_class(data.limit_per_class, seed=seed)
    log(f"train: {train_ds.counts()}  val: {val_ds.counts()}")
    for name, ds, where in (("training", train_ds, data.train), ("validation", val_ds, data.val or data.train)):
        labels = {s.label for s in ds.samples}
        if labels != {0, 1}:  # refused before any image is encoded
            have = "no images" if not labels else f"only {'fake' if 1 in labels else 'real'} images"
            raise ConfigError(f"{where}: the {name} set has {have}; a detector needs both real and fake")
    return train_ds, val_ds


def _without(ds: ImageDataset, exclude: str, log) -> ImageDataset:
    """``ds`` less every image whose bytes equal one under ``exclude`` (held-out examples stay
    held out even when a copy of them sits in the training pool under another name)."""
    from ..data.io import file_sha256, list_images

    files, problems = list_images([exclude])
    if problems:
        raise ConfigError(f"data.exclude: {problems[0][0]}: {problems[0][1]}")
    held = {file_sha256(p) for p in files}
    kept = [s for s in ds.samples if file_sha256(s.path) not in held]
    log(f"data.exclude: {len(ds.samples) - len(kept)} of {len(ds.samples)} images of {ds.name} are in {exclude}; left out")
    return ImageDataset(ds.name, kept)


def _validation_logits(detector: Detector, val_ds: ImageDataset, ctx: TrainContext):
    """Logits of the trained detector on the validation split: through the feature cache when
    its frozen part is cacheable, else from pixels. Returns (logits, labels, samples, features)."""
    if ctx.cache_key is not None:
        xva, yva, samples = ctx.features(val_ds.samples, "val")
        k = ctx.view.crops  # rows per image: the score is the mean logit of an image's crops
        return detector.logits_from_features(xva, views=k), yva[::k], samples[::k], xva
    preds = detector.predict([str(s.path) for s in val_ds.samples], batch_size=ctx.feature_batch_size)
    samples = [s for s, p in zip(val_ds.samples, preds) if p.error is None]
    labels = torch.tensor([s.label for s in samples], dtype=torch.float32)
    logits = torch.logit(torch.tensor([p.prob_fake for p in preds if p.error is None]).clamp(1e-7, 1 - 1e-7))
    return logits, labels, samples, None


def train(config: dict[str, Any] | Recipe, progress_factory=None, echo: Callable[[str], None] | None = print) -> Path:
    """Run a recipe; returns the run directory. The whole recipe is checked before any work."""
    if isinstance(config, dict) and config.get("experts"):
        from .ensemble_recipe import train_ensemble

        return train_ensemble(config, train, progress_factory, echo)
    recipe = load_recipe(config)
    if not recipe.data.train:
        raise ConfigError("data.train is required (a folder with 0_real/1_fake, or a CSV/JSONL manifest)")
    check_device(recipe.device)
    trainer_name = DETECTORS.get(recipe.detector).trainer
    if recipe.train.balance != "none" and trainer_name not in BALANCING_TRAINERS:
        raise ConfigError(f"train.balance: the '{trainer_name}' trainer of '{recipe.detector}' does not read it "
                          f"(only {', '.join(BALANCING_TRAINERS)} do); leave it at none")
    trainer = TRAINERS.get(trainer_name)
    accelerator = make_accelerator(recipe.train.precision, recipe.device)
    out = Path(recipe.output_dir)
    if not accelerator.is_main_process:  # under `accelerate launch`: the main process writes the run folder
        return _run(recipe, trainer, out, progress_factory, None, accelerator)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out, "train"):  # a second run into the same folder fails at once
        return _run(recipe, trainer, out, progress_factory, echo, accelerator)


# Keys a resumed run may change: they do not change what the checkpoint was trained with.
RESUME_MAY_CHANGE = ("train.resume", "train.epochs", "train.checkpoint_every", "train.keep_checkpoints",
                     "train.workers", "train.grad_accum", "device", "features.batch_size", "features.cache_dir")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_resume(recipe: Recipe, out: Path) -> None:
    """A run resumes from its checkpoint only with the recipe that checkpoint was trained with
    (a longer ``train.epochs`` and the settings in RESUME_MAY_CHANGE aside): otherwise
    config.yaml would record values that were never used."""
    saved = out / "config.yaml"
    if not (recipe.train.resume and saved.is_file() and has_checkpoint(out / "checkpoint")):
        return
    before, now = _flat(yaml.safe_load(saved.read_text()) or {}), _flat(recipe.as_dict())
    changed = [k for k in sorted(set(before) | set(now))
               if k not in RESUME_MAY_CHANGE and before.get(k) != now.get(k)]
    if changed:
        what = "; ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
        raise ConfigError(f"{out}: cannot resume with a changed recipe ({what}); the checkpoint was trained with "
                          "the old values: set them back, or train into a new output folder")


def _run(recipe: Recipe, trainer, out: Path, progress_factory, echo, accelerator) -> Path:
    main = accelerator.is_main_process
    _check_resume(recipe, out)
    accelerator.wait_for_everyone()  # every process has read the old config.yaml before the main one rewrites it
    if main and not recipe.train.resume:
        (out / "train.log").write_text("")
    log = RunLog(out / "train.log", echo) if main else (lambda message: None)
    if main:
        (out / "config.yaml").write_text(yaml.safe_dump(recipe.as_dict(), sort_keys=False))
    if accelerator.num_processes > 1:
        log(f"{accelerator.num_processes} processes ({accelerator.distributed_type}); each step's "
            f"{recipe.train.batch_size} images are split between them")
    torch.manual_seed(recipe.train.seed)
    train_ds, val_ds = _datasets(recipe, log)

    device = device_for(accelerator, recipe.device)
    backbone = load_backbone(recipe.backbone, device=str(device)).freeze()
    detector = build_detector(recipe, backbone).to(device)
    detector.attach_backbone(backbone)
    detector.view = View.parse(recipe.view)
    report = detector.parameter_report()
    log(f"parameters: {report['trainable']:,} trainable of {report['total']:,} "
        f"({100 * report['trainable_share_of_vision_tower']:.3f} % of the vision tower)")
    if recipe.train.resume and not detector.resumable:
        log(f"note: '{recipe.detector}' training keeps no checkpoint; --resume starts it from the beginning")
    ctx = TrainContext(config=recipe.train, augment=Augmentations.from_config(recipe.as_dict()["augment"]), log=log,
                       progress_factory=progress_factory, run_dir=out, cache_root=recipe.features.cache_dir,
                       feature_batch_size=recipe.features.batch_size, cache_key=detector.cache_point(),
                       backbone=detector.backbone, view=detector.view, accelerator=accelerator)
    t0 = time.time()
    log(f"trainer: {detector.trainer}")
    summary = trainer(detector, train_ds.samples, val_ds.samples, ctx)
    fit_seconds = time.time() - t0
    accelerator.wait_for_everyone()
    if not main:  # the same weights are in every process; the main one finishes the run
        return out
    logits, yva, val_samples, xva = _validation_logits(detector, val_ds, ctx)
    if recipe.calibration not in (None, "none"):
        detector.calibration = fit_calibration(logits, yva, recipe.calibration)
        log(f"calibration on validation: {detector.calibration}")
    probs = detector.to_probability(logits)
    detector.threshold = tune_threshold(yva.int().tolist(), probs.tolist())
    data = recipe.data
    detector.metadata = {
        "trained_on": str(data.train),
        "validated_on": str(data.val or f"{data.val_fraction:.0%} of train"),
        "train_counts": train_ds.counts(),
        "threshold_source": "validation split (max mean of real/fake accuracy)",
    }
    record_operating_points(detector.metadata, yva.int().tolist(), probs.tolist(), "the validation split")
    metrics = score(yva.int().tolist(), probs.tolist(), detector.threshold)
    if xva is not None and recipe.detector in REPORTS:
        rows_labels = ctx.features(val_ds.samples, "val")[1]
        for path in REPORTS.get(recipe.detector)(detector, out / "report", xva, rows_labels, summary.get("history", [])):
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
