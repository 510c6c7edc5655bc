"""The Python API: ``aigi.load_detector(...)`` and ``detector.predict([...])``."""
from __future__ import annotations

from pathlib import Path

import torch

from .detectors.base import CONFIG_FILE, Detector, load_detector_dir

_WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_DETECTOR = "univfd-cifake"


def pretrained_detectors() -> dict[str, Path]:
    """Detectors shipped inside the package (a few KB each)."""
    return {p.name: p for p in sorted(_WEIGHTS.iterdir()) if (p / CONFIG_FILE).is_file()} if _WEIGHTS.is_dir() else {}


def resolve_detector(name_or_path: str | Path | None = None) -> Path:
    """A shipped name, a saved detector folder, or a training run folder → folder."""
    if name_or_path in (None, "", "default"):
        name_or_path = DEFAULT_DETECTOR
    shipped = pretrained_detectors()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    path = Path(name_or_path)
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / "detector" / CONFIG_FILE).is_file():
        return path / "detector"
    known = ", ".join(shipped) or "none"
    raise FileNotFoundError(f"{name_or_path}: not a shipped detector ({known}), a saved detector folder or a run folder")


def load_detector(name_or_path: str | Path | None = None, device: str | torch.device = "cpu") -> Detector:
    """Load a detector ready for ``predict``; with no argument, the default one."""
    return load_detector_dir(resolve_detector(name_or_path), device=device)


def train(config: str | Path | dict, overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """Train from a YAML recipe (path) or a dict, with ``key=value`` overrides; returns the run folder."""
    from .config import apply_recipe_overrides, resolve
    from .training.run import train as run_train

    cfg = apply_recipe_overrides(config, overrides) if isinstance(config, dict) else resolve(config, overrides)
    return run_train(cfg, echo=None)


def evaluate(detector: Detector | str | Path | None, data: str | Path, out: str | Path | None = None,
             subset_depth: int = 1, use_cache: bool = True):
    """Score a detector on a labelled folder or manifest; writes JSON/CSV when ``out`` is given."""
    from .data.datasets import load_dataset
    from .eval.runner import evaluate as run_eval
    from .eval.runner import write_outputs

    det = detector if isinstance(detector, Detector) else load_detector(detector)
    result = run_eval(det, load_dataset(data, subset_depth=subset_depth), use_cache=use_cache)
    if out is not None:
        write_outputs(result, det, str(data), Path(out))
    return result


def describe(config: str | Path | dict, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Build a recipe's detector on random weights of its true architecture (nothing
    is downloaded) and count its parameters."""
    from .backbones import load_backbone, random_equivalent
    from .config import apply_recipe_overrides, resolve
    from .training.run import build_detector, with_defaults

    raw = apply_recipe_overrides(config, overrides) if isinstance(config, dict) else resolve(config, overrides)
    if raw.get("experts"):  # an ensemble recipe: each expert, and the sums
        from .training.ensemble_recipe import expert_configs

        experts = {name: describe(cfg) for name, cfg in expert_configs(raw).items()}
        keys = ("total", "trainable", "frozen", "vision_tower")
        sums = {k: sum(e[k] for e in experts.values()) for k in keys}
        return {"detector": "ensemble", "backbone": ", ".join(e["backbone"] for e in experts.values()),
                "sized_with": ", ".join(e["sized_with"] for e in experts.values()), **sums,
                "trainable_share_of_vision_tower": sums["trainable"] / sums["vision_tower"], "experts": experts}
    cfg = with_defaults(raw)
    sized = {**cfg, "backbone": random_equivalent(cfg["backbone"])}
    backbone = load_backbone(sized["backbone"]).freeze()
    detector = build_detector(sized, backbone)
    if detector._backbone is None:
        detector.attach_backbone(backbone)
    return {"detector": cfg["detector"], "backbone": cfg["backbone"], "sized_with": sized["backbone"],
            **detector.parameter_report()}


def export(name_or_path: str | Path, out: str | Path, merge_shared: bool = False) -> Path:
    """Copy a trained detector to a folder, optionally in its inference form
    (MoLE: shared LoRA experts folded into dense bypass matrices; FeatDistill LoRA
    experts: bypasses folded into their layers)."""
    det = load_detector(name_or_path)
    if merge_shared:
        merge = getattr(det, "merge_for_inference", None)
        if merge is None:
            raise ValueError(f"{name_or_path}: detector '{det.name}' has no adapters to merge")
        merge()
    return det.save(out)


def calibrate(name_or_path: str | Path, data: str | Path, method: str = "temperature",
              out: str | Path | None = None, subset_depth: int = 1) -> dict:
    """Fit temperature or Platt scaling on a labelled validation set, re-tune the
    threshold there, and save the detector (in place, or to ``out``)."""

    from .data.datasets import load_dataset
    from .eval.calibration import fit
    from .eval.metrics import expected_calibration_error, tune_threshold
    from .eval.runner import detector_logits

    folder = resolve_detector(name_or_path)
    det = load_detector_dir(folder)
    ds = load_dataset(data, subset_depth=subset_depth)
    logits, labels = detector_logits(det, ds)
    det.calibration = None
    before = expected_calibration_error(labels.tolist(), det.to_probability(logits).tolist())
    det.calibration = fit(logits, labels, method)
    probs = det.to_probability(logits)
    det.threshold = tune_threshold(labels.int().tolist(), probs.tolist())
    det.metadata["calibrated_on"] = str(data)
    det.save(out or folder)
    return {"calibration": det.calibration, "threshold": det.threshold, "ece_before": before,
            "ece_after": expected_calibration_error(labels.tolist(), probs.tolist()), "saved": str(out or folder)}


def robustness(detector: Detector | str | Path | None, data: str | Path, ops: list[str] | tuple[str, ...] = ("jpeg", "gaussian_blur"),
               severities: list[float] | tuple[float, ...] = (0.25, 0.5, 0.75, 1.0), seed: int = 0,
               suite: str = "folder", limit_per_class: int | None = None) -> list[dict]:
    """Metrics under each degradation and severity (rows as ``aigi robustness`` writes them)."""
    from .data.suites import load_suite
    from .eval.robustness import sweep

    det = detector if isinstance(detector, Detector) else load_detector(detector)
    ds = load_suite(data, suite)
    if limit_per_class:
        ds = ds.limit_per_class(limit_per_class)
    rows, _ = sweep(det, ds, list(ops), list(severities), seed=seed)
    return rows


def ensemble(members: dict[str, str | Path], out: str | Path, weights: list[float] | None = None) -> Detector:
    """Soft-voting ensemble of saved detectors, written (self-contained) to ``out``."""
    from .detectors.ensemble import EnsembleDetector

    return EnsembleDetector.from_detectors(members, weights=weights, out=out)
