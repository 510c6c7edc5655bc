"""An ensemble recipe: train each expert, then combine them by soft voting.

```yaml
output: runs/my-ensemble
experts:                       # name → recipe (a path relative to this file, or inline)
  clip-full: expert-full.yaml
  clip-lora: {base: expert-lora.yaml, train: {lr: 1.0e-4}}
weights: [1, 1]                # optional, one per expert
seeds: 3                       # optional: each expert trained 3 times (bagging), at its train.seed + 0, 1, 2
data: {...}                    # any other section is shared by every expert;
augment: {...}                 # an expert's own recipe overrides it
```

A command-line override of a shared key (``train.epochs=1``) reaches every
expert, over its own value (:func:`aigi.config.apply_recipe_overrides`).

Experts go to ``<output>/experts/<name>`` (full run folders), the ensemble to
``<output>/detector``. The ensemble's threshold is tuned on the experts' own
validation predictions (their ``val_predictions.csv``), averaged like the vote,
so nothing is scored twice; each image by the experts that held it out
(:func:`out_of_bag_votes`: a bag's copies split at different seeds).

``seeds: K`` trains every expert K times, at its own ``train.seed`` plus 0…K-1, as
experts ``<name>-1`` … ``<name>-K`` that share the expert's weight. A linear probe's
worst held-out source moves by 0.1 AUC between seeds (docs/model-card.md); the
mean of K probes moves far less, and frozen-tower experts on one tower share their
forward pass, so the K heads cost nothing at scoring. ``train.seed=S`` on the command
line moves the whole bag (S … S+K-1). With ``train.resume: true`` finished experts are
kept and an interrupted one continues from its checkpoint.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable

from ..config import ENSEMBLE_KEYS, ConfigError, merge
from ..config.recipe import load_recipe
from ..detectors.base import CONFIG_FILE
from ..detectors.ensemble import EnsembleDetector
from ..detectors.operating import record as record_operating_points
from ..eval.metrics import score, tune_threshold


def expert_configs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each expert's full recipe: the shared sections, then its own on top, output under the ensemble's;
    with ``seeds: K``, K of each (:func:`bagged`). Every expert's recipe is checked here, so a typo in the
    last one fails before the first trains."""
    experts = config.get("experts")
    if not isinstance(experts, dict) or not experts:
        raise ConfigError("experts must map names to recipes")
    shared = {k: v for k, v in config.items() if k not in ENSEMBLE_KEYS}
    out = Path(str(config.get("output") or "runs/ensemble"))
    copies = seed_copies(config)
    result = {}
    for name, recipe in experts.items():
        if not isinstance(recipe, dict):
            raise ConfigError(f"expert '{name}': recipe must be a mapping or a YAML path, not {recipe!r}")
        try:
            seed = load_recipe(merge(shared, recipe)).train.seed
        except ConfigError as exc:
            raise ConfigError(f"expert '{name}': {exc}") from None
        for copy, label in enumerate(bagged(name, copies)):
            result[label] = {**merge(shared, merge(recipe, {"train": {"seed": seed + copy}})),
                             "output": str(out / "experts" / label)}
    expert_weights(config)  # checked now as well
    return result


def seed_copies(config: dict[str, Any]) -> int:
    copies = config.get("seeds", 1)
    if not isinstance(copies, int) or isinstance(copies, bool) or copies < 1:
        raise ConfigError(f"seeds must be a whole number ≥ 1 (copies of each expert), not {copies!r}")
    return copies


def bagged(name: str, copies: int) -> list[str]:
    """The experts one listed expert becomes: itself, or ``<name>-1`` … ``<name>-K``."""
    return [name] if copies == 1 else [f"{name}-{k}" for k in range(1, copies + 1)]


def expert_weights(config: dict[str, Any]) -> list[float] | None:
    """The vote's weights, one per trained expert (a bagged expert's copies each get its weight)."""
    weights, experts = config.get("weights"), config.get("experts") or {}
    if weights is None:
        return None
    if (not isinstance(weights, list) or len(weights) != len(experts)
            or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights)):
        raise ConfigError(f"weights must be a list of {len(experts)} numbers, one per expert, not {weights!r}")
    copies = seed_copies(config)
    return [float(w) for w in weights for _ in range(copies)]


def _val_probabilities(run: Path) -> dict[str, tuple[int, float]]:
    with open(run / "val_predictions.csv", newline="") as fh:
        return {r["path"]: (int(r["label"]), float(r["prob_fake"])) for r in csv.DictReader(fh)}


def out_of_bag_votes(tables: dict[str, dict[str, tuple[int, float]]], names: list[str],
                     weights: list[float]) -> tuple[list[int], list[float]]:
    """The vote on validation data, each image scored by the experts that held it out (path →
    (label, P(fake)) per expert). Experts sharing one split (one seed) all hold out the same
    images, and every image is scored by all of them; a bag's copies split at different seeds,
    so an image of one copy's split is scored by the copies that never trained on it (out of bag)."""
    labels, voted = [], []
    for path in sorted(set().union(*tables.values())):
        held = [(w, tables[n][path]) for n, w in zip(names, weights) if path in tables[n] and w > 0]
        if held:
            labels.append(held[0][1][0])
            voted.append(sum(w * p for w, (_, p) in held) / sum(w for w, _ in held))
    return labels, voted


def train_ensemble(config: dict[str, Any], train_one: Callable[..., Path], progress_factory=None,
                   echo: Callable[[str], None] | None = print) -> Path:
    from accelerate import PartialState

    main = PartialState().is_main_process  # under `accelerate launch`, one process speaks and writes
    say = (echo if main else None) or (lambda _m: None)
    out = Path(str(config.get("output") or "runs/ensemble"))
    runs: dict[str, Path] = {}
    configs = expert_configs(config)  # all checked before the first expert trains
    for name, cfg in configs.items():
        run = Path(cfg["output"])
        resume = bool((cfg.get("train") or {}).get("resume"))
        if resume and (run / "detector" / CONFIG_FILE).is_file() and (run / "val_predictions.csv").is_file():
            say(f"expert {name}: already trained in {run}, kept")
        else:
            say(f"expert {name}: training into {run}")
            run = train_one(cfg, progress_factory=progress_factory, echo=echo)
        runs[name] = run
    if not main:
        return out
    weights = expert_weights(config)
    det = EnsembleDetector.from_detectors({n: r / "detector" for n, r in runs.items()}, weights=weights,
                                          out=out / "detector")
    labels, voted = out_of_bag_votes({n: _val_probabilities(r) for n, r in runs.items()}, det.member_names, det.weights)
    det.threshold = tune_threshold(labels, voted)
    for key in ("trained_on", "validated_on"):  # what the service and the model card report, when the experts agree
        said = {json.dumps(m.metadata.get(key)) for m in det.members.values()}
        if len(said) == 1:
            det.metadata[key] = json.loads(said.pop())
    det.metadata["threshold_source"] = (f"validation: {len(labels)} images, each scored by the weighted mean of the "
                                        "experts that held it out")
    record_operating_points(det.metadata, labels, voted, "out-of-bag validation votes")
    det.save(out / "detector")
    metrics = {"ensemble": score(labels, voted, det.threshold)}
    for n in det.member_names:
        metrics[n] = json.loads((runs[n] / "metrics.json").read_text())["validation"]
    (out / "metrics.json").write_text(json.dumps({"validation": metrics, "experts": {n: str(r) for n, r in runs.items()},
                                                  "weights": det.weights}, indent=2) + "\n")
    experts = ", ".join("%s %.4f" % (n, metrics[n]["ap"]) for n in det.member_names)
    say(f"ensemble of {', '.join(det.member_names)}: validation AP {metrics['ensemble']['ap']:.4f} "
        f"(experts: {experts}); saved {out / 'detector'}")
    return out
