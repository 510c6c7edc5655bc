"""What FeatDistill's stages cost per training step: stage 1 (BCE) and stage 2 with
L2 or contrastive distillation, for an expert that tunes the last blocks (the
frozen prefix runs once per batch, shared by student and teacher) and one that
tunes every block (nothing to share).

Each case runs in its own process so the peak resident memory (ru_maxrss) is its own.

    python benchmarks/featdistill_cost.py --backbone embedded --batch 8 --steps 3
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CASES = [  # (label, tune, tuned_blocks, distill, stage)
    ("full, last 3 blocks  stage 1 (BCE)", "full", 3, "l2", 1),
    ("full, last 3 blocks  stage 2 (L2)", "full", 3, "l2", 2),
    ("LoRA, last 3 blocks  stage 2 (CRD)", "lora", 3, "crd", 2),
    ("LoRA, all blocks     stage 1 (BCE)", "lora", "all", "l2", 1),
    ("LoRA, all blocks     stage 2 (L2)", "lora", "all", "l2", 2),
]


def one(index: int, backbone: str, batch: int, steps: int) -> dict:
    import torch

    from aigi.methods.featdistill.distillation import DISTILLATIONS
    from aigi.methods.featdistill.model import FeatDistillExpert

    label, tune, blocks, distill, stage = CASES[index]
    torch.manual_seed(0)
    det = FeatDistillExpert(backbone, tune=tune, tuned_blocks=blocks, distill=distill).train()
    dist = DISTILLATIONS.get(distill)(det)
    size = det.model.preprocess_spec.output_size
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    y = (torch.arange(batch) % 2).float()
    params = det.trainable_parameters() + [p for m in dist.modules() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-5)
    if stage == 2:
        dist.begin()

    def step():
        prefix = det.prefix(x)
        tokens, embed, logits = det.run(prefix)
        loss = det.losses(logits, y)["loss"]
        if stage == 2:
            loss = loss + det.distill_weight * dist.loss(prefix, tokens, embed)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if stage == 2:
            dist.after_step(1, 10)

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return {"case": label, "s_per_step": (time.perf_counter() - t0) / steps,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "trainable": sum(p.numel() for p in det.trainable_parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="embedded")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--case", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case is not None:
        print(json.dumps(one(args.case, args.backbone, args.batch, args.steps)))
        return
    print(f"backbone={args.backbone} batch={args.batch} steps={args.steps}")
    print(f"{'':<36} {'trainable':>11} {'s/step':>8} {'img/s':>7} {'peak RSS MiB':>13}")
    for i in range(len(CASES)):
        out = subprocess.run([sys.executable, __file__, "--case", str(i), "--backbone", args.backbone,
                              "--batch", str(args.batch), "--steps", str(args.steps)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['case']:<36} {r['trainable']:>11,} {r['s_per_step']:>8.2f} {args.batch / r['s_per_step']:>7.2f} "
              f"{r['peak_rss_mib']:>13.0f}", flush=True)


if __name__ == "__main__":
    main()
