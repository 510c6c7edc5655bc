"""Reports a person can open: JSON + CSV + Markdown + one self-contained HTML page.

The HTML embeds its plots as base64 PNGs, so the file can be mailed or attached
to a ticket and still shows everything: ROC curves, per-subset bars, score
histograms for real vs fake, robustness curves when a sweep ran.
"""
from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path
from typing import Any, Sequence

from . import plots

COLUMNS = [("n", "n"), ("ap", "AP"), ("auc", "AUC"), ("eer", "EER"), ("tpr@1%fpr", "TPR@1%"),
           ("tpr@5%fpr", "TPR@5%"), ("acc_real@0.5", "real@.5"), ("acc_fake@0.5", "fake@.5"),
           ("acc_mean@0.5", "mean@.5"), ("acc_mean@val", "mean@val"), ("acc_mean@oracle", "mean@oracle*"),
           ("ece", "ECE")]


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:.3f}" for x in v) + "]"
    return str(v)


def _long_rows(evals: dict[str, dict[str, dict[str, Any]]], sweeps: dict[str, Sequence[dict[str, Any]]]):
    for det, rows in evals.items():
        for subset, m in rows.items():
            yield {"detector": det, "op": "clean", "severity": 0.0, "subset": subset, **m}
    for det, rows in sweeps.items():
        for r in rows:
            yield {"detector": det, **r}


def write_report(out: Path, data: str, evals: dict[str, dict[str, dict[str, Any]]],
                 scores: dict[str, tuple[list[int], list[float]]],
                 sweeps: dict[str, Sequence[dict[str, Any]]] | None = None,
                 notes: Sequence[str] = ()) -> dict[str, Path]:
    """``evals``: detector → subset → metrics; ``scores``: detector → (labels, P(fake))
    pooled over the clean data; ``sweeps``: detector → robustness rows."""
    sweeps = sweeps or {}
    out.mkdir(parents=True, exist_ok=True)
    figs = out / "plots"
    figs.mkdir(exist_ok=True)
    made = {"roc": plots.roc_plot(scores, figs / "roc.png"),
            "subsets": plots.subset_bars(evals, "ap", figs / "ap_per_subset.png"),
            "histograms": plots.score_histograms(scores, figs / "score_histograms.png")}
    if sweeps:
        made["robustness_ap"] = plots.robustness_plot(sweeps, "ap", figs / "robustness_ap.png")
        made["robustness_acc"] = plots.robustness_plot(sweeps, "acc_mean@val", figs / "robustness_acc.png")

    files = {"json": out / "report.json", "csv": out / "report.csv", "md": out / "report.md", "html": out / "report.html"}
    files["json"].write_text(json.dumps({"data": data, "metrics": evals, "robustness": sweeps, "notes": list(notes)},
                                        indent=2) + "\n")
    long_rows = list(_long_rows(evals, sweeps))
    fields = list(dict.fromkeys(k for r in long_rows for k in r))
    with open(files["csv"], "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in long_rows:
            w.writerow({k: (json.dumps(v) if isinstance(v, list) else v) for k, v in r.items()})

    def table(rows: dict[str, dict[str, Any]], fmt: str) -> str:
        heads = ["subset"] + [label for _, label in COLUMNS]
        body = [[name] + [_fmt(r.get(k)) for k, _ in COLUMNS] for name, r in rows.items()]
        if fmt == "md":
            return "\n".join(["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
                             + ["| " + " | ".join(row) + " |" for row in body])
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
        return f"<table><thead><tr>{cells}</tr></thead><tbody>{trs}</tbody></table>"

    footnote = ("@val: threshold tuned on the detector's validation split. *oracle: threshold fitted on these "
                "test labels, shown for reference only.")
    md = [f"# aigi evaluation report\n\ndata: `{data}`\n"]
    for det, rows in evals.items():
        md += [f"## {det}\n", table(rows, "md"), ""]
        ci = rows.get("all", {})
        if ci.get("ap_ci"):
            md.append(f"95 % bootstrap CI (all): AP {_fmt(ci['ap_ci'])}, AUC {_fmt(ci['auc_ci'])}\n")
    md += [footnote, ""] + [f"- {n}" for n in notes]
    md += [f"\n![{k}](plots/{p.name})" for k, p in made.items()]
    files["md"].write_text("\n".join(md) + "\n")

    def img(path: Path, alt: str) -> str:
        data64 = base64.b64encode(path.read_bytes()).decode()
        return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data64}"><figcaption>{html.escape(alt)}</figcaption></figure>'

    sections = []
    for det, rows in evals.items():
        ci = rows.get("all", {})
        ci_text = (f"<p class=ci>95 % bootstrap CI (all): AP {_fmt(ci.get('ap_ci'))}, AUC {_fmt(ci.get('auc_ci'))}</p>"
                   if ci.get("ap_ci") else "")
        sections.append(f"<h2>{html.escape(det)}</h2>{table(rows, 'html')}{ci_text}")
    if sweeps:
        for det, rows in sweeps.items():
            trs = "".join(f"<tr><td>{html.escape(r['op'])}</td><td>{r['severity']:.2f}</td><td>{_fmt(r.get('ap'))}</td>"
                          f"<td>{_fmt(r.get('auc'))}</td><td>{_fmt(r.get('acc_mean@val'))}</td></tr>"
                          for r in rows if r["subset"] == "all")
            sections.append(f"<h2>Robustness — {html.escape(det)}</h2><table><thead><tr><th>op</th><th>severity</th>"
                            f"<th>AP</th><th>AUC</th><th>mean@val</th></tr></thead><tbody>{trs}</tbody></table>")
    captions = {"roc": "ROC curves (all images)", "subsets": "AP per subset",
                "histograms": "P(fake) for real and fake images", "robustness_ap": "Robustness: AP against severity",
                "robustness_acc": "Robustness: mean accuracy at the validation threshold against severity"}
    figures = "".join(img(p, captions.get(k, k)) for k, p in made.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aigi evaluation report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: .5em 0 1em; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
thead {{ background: #f2f2f2; }}
figure {{ display: inline-block; margin: .5em; vertical-align: top; }}
img {{ max-width: 100%; }}
.note {{ color: #666; font-size: 12px; }}
</style></head><body>
<h1>aigi evaluation report</h1>
<p>data: <code>{html.escape(data)}</code></p>
{''.join(sections)}
<p class="note">{html.escape(footnote)}</p>
{''.join(f'<p class="note">{html.escape(n)}</p>' for n in notes)}
<h2>Plots</h2>
{figures}
</body></html>
"""
    files["html"].write_text(page)
    return files
