"""Multi-expert ensemble with soft voting (as in FeatDistill, Tu et al. 2026).

An ensemble is a list of trained detectors — any registered method, any
backbone (CLIP, SigLIP), each with its own pre-processing — whose P(fake) are
averaged, optionally weighted. Every prediction keeps each expert's score beside
the ensemble's, so a report shows who voted what. The ensemble folder is
self-contained: its members are copied into ``members/<name>/``.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import InputError
from .base import CONFIG_FILE, Detector, Prediction
from .decoding import draft_side
from .inference import ImageReader, PreparedBatch
from .store import load_detector_dir, resolve_detector

MEMBERS_DIR = "members"


class EnsembleDetector(Detector):
    name = "ensemble"
    feature_key = None

    def __init__(self, backbone: str = "members", threshold: float = 0.5, members: Sequence[str] = (),
                 weights: Sequence[float] | None = None, root: str | None = None) -> None:
        super().__init__(backbone, threshold)
        if not members:
            raise InputError("an ensemble needs at least one member")
        self.member_names = list(members)
        w = [1.0] * len(self.member_names) if weights is None else [float(x) for x in weights]
        if len(w) != len(self.member_names) or any(x < 0 for x in w) or sum(w) <= 0:
            raise InputError(f"weights {w} must be non-negative, not all zero, one per member")
        self.weights = w
        self.root = root
        self._members: dict[str, Detector] = {}

    def params(self) -> dict[str, Any]:
        return {"members": self.member_names, "weights": self.weights}

    @property
    def members(self) -> dict[str, Detector]:
        """Loaded on first use from ``<ensemble folder>/members/<name>``."""
        if not self._members:
            if self.root is None:
                raise RuntimeError("ensemble members are not attached (build with from_detectors or load the folder)")
            for name in self.member_names:
                self._members[name] = load_detector_dir(Path(self.root) / MEMBERS_DIR / name, device=self.device)
        return self._members

    def cache_point(self) -> str | None:
        return None

    def parameter_report(self) -> dict[str, Any]:
        reports = [m.parameter_report() for m in self.members.values()]
        keys = ("total", "trainable", "frozen", "vision_tower")
        out = {k: sum(r[k] for r in reports) for k in keys}
        out["trainable_share_of_vision_tower"] = out["trainable"] / out["vision_tower"]
        return out

    # ---- voting -------------------------------------------------------------------
    def vote(self, expert_probs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Soft voting: the weighted mean of the experts' probabilities."""
        total = sum(self.weights)
        return sum(w * expert_probs[n] for n, w in zip(self.member_names, self.weights)) / total

    def experts(self) -> list[Detector]:
        return list(self.members.values())

    def preparer(self) -> ImageReader:
        """Read each input once for all experts (each cuts its own view from the decoded image);
        a draft decode only when every expert resizes."""
        members = self.members.values()
        return ImageReader(draft_side(self.decode, not any(m.view.native for m in members),
                                      max(m.preprocess_spec.output_size for m in members)))

    @torch.no_grad()
    def score_batch(self, batch: PreparedBatch) -> list[Prediction]:
        names = [batch.names[i] for i in batch.rows]
        per_member = {name: det.predict(batch.pixels, batch_size=max(1, len(names)), names=names)
                      for name, det in self.members.items()}
        scored: dict[int, Prediction] = {}
        for k, i in enumerate(batch.rows):
            preds = {name: per_member[name][k] for name in self.member_names}
            failed = next((p.error for p in preds.values() if p.error is not None), None)
            if failed is not None:
                scored[i] = Prediction(batch.names[i], None, None, failed)
                continue
            p = float(self.vote({n: torch.tensor(pr.prob_fake) for n, pr in preds.items()}))
            scored[i] = Prediction(batch.names[i], p, self.verdict(p), None,
                                   {f"p_{n}": float(preds[n].prob_fake) for n in self.member_names})
        return [scored.get(i) or Prediction(name, None, None, batch.errors.get(i, "not scored"))
                for i, name in enumerate(batch.names)]

    def dataset_probabilities(self, evaluate_member) -> tuple[dict[int, float], list, dict[str, dict[int, float]]]:
        """Soft vote over each member's own (cached) evaluation: ``evaluate_member(det)``
        returns ``(index → P(fake), errors)``."""
        per_member = {name: evaluate_member(det) for name, det in self.members.items()}
        common = set.intersection(*(set(scores) for scores, _ in per_member.values()))
        voted = {i: float(self.vote({n: torch.tensor(per_member[n][0][i]) for n in self.member_names}))
                 for i in sorted(common)}
        errors = next(iter(per_member.values()))[1]
        return voted, errors, {n: scores for n, (scores, _) in per_member.items()}

    # ---- persistence --------------------------------------------------------------
    @classmethod
    def from_detectors(cls, members: dict[str, str | Path], weights: Sequence[float] | None = None,
                       out: str | Path | None = None) -> "EnsembleDetector":
        """Assemble saved detectors (folders); with ``out`` the ensemble is written there."""
        det = cls(members=list(members), weights=weights)
        if out is not None:
            out = Path(out)
            for name, source in members.items():
                dest = out / MEMBERS_DIR / name
                if dest.exists():
                    shutil.rmtree(dest)
                shutil.copytree(resolve_detector(source), dest)
            det.root = str(out.resolve())
            det.save(out)
        else:
            det._members = {n: load_detector_dir(resolve_detector(s)) for n, s in members.items()}
        return det

    def loaded_from(self, folder: Path) -> None:
        self.root = str(Path(folder).resolve())


def is_ensemble_folder(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() and (folder / MEMBERS_DIR).is_dir()
