"""DGS-Net's training cost against plain LoRA fine-tuning: seconds and peak memory per step.

Each mode runs in its own process so the peak resident memory (ru_maxrss) is its own.

    python benchmarks/dgs_cost.py --backbone embedded --text random:clip-text-b16 --batch 8 --steps 3
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one(mode: str, backbone: str, text: str, batch: int, steps: int) -> dict:
    import torch

    from aigi.methods.dgs.model import DGSDetector
    from aigi.methods.dgs.trainer import training_step

    det = DGSDetector(backbone, text_backbone=text)
    size = det.student.preprocess_spec.output_size
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    y = torch.arange(batch) % 2
    opt = torch.optim.AdamW(det.trainable_parameters(), lr=1e-4)
    if mode == "infer":
        def step():
            with torch.no_grad():
                det(x)
    elif mode == "dgs":
        text_embeds = det.text_embeddings(["a photo"] * batch)
        _ = det.teacher  # loaded before timing, like the captions and text embeddings

        def step():
            training_step(det, x, y, text_embeds, opt)
    else:
        def step():
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(det(x), y.float()).backward()
            opt.step()
    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - t0) / steps
    return {"mode": mode, "s_per_step": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="embedded")
    ap.add_argument("--text", default="random:clip-text-b16")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(one(args.mode, args.backbone, args.text, args.batch, args.steps)))
        return
    rows = []
    for mode in ("infer", "lora", "dgs"):
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--backbone", args.backbone, "--text", args.text,
                              "--batch", str(args.batch), "--steps", str(args.steps)], capture_output=True, text=True,
                             check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"backbone={args.backbone} text={args.text} batch={args.batch} steps={args.steps}")
    print(f"{'':<26} {'s/step':>8} {'peak RSS MiB':>13}")
    labels = {"infer": "inference (student only)", "lora": "plain LoRA step (BCE)", "dgs": "DGS-Net step (3 branches)"}
    for r in rows:
        print(f"{labels[r['mode']]:<26} {r['s_per_step']:>8.2f} {r['peak_rss_mib']:>13.0f}")
    lora, dgs = rows[1], rows[2]
    print(f"DGS / LoRA: {dgs['s_per_step'] / lora['s_per_step']:.2f}x time, "
          f"{dgs['peak_rss_mib'] / lora['peak_rss_mib']:.2f}x peak memory")


if __name__ == "__main__":
    main()
