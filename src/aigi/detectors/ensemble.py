"""Multi-expert ensemble with soft voting (as in FeatDistill, Tu et al. 2026).

An ensemble is a list of trained detectors — any registered method, any
backbone (CLIP, SigLIP), each with its own pre-processing — whose P(fake) are
averaged, optionally weighted. Every prediction keeps each expert's score beside
the ensemble's, so a report shows who voted what. The ensemble folder is
self-contained: its members are copied into ``members/<name>/``.
"""
from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from ..backbones.views import View
from ..errors import InputError
from .base import CONFIG_FILE, Detector, Prediction
from .decoding import draft_side
from .inference import ImageReader, PreparedBatch, ViewPreparer, ViewsPreparer
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
            share_towers(self._members.values())
        return self._members

    def cache_point(self) -> str | None:
        return None

    def view_groups(self) -> list[list[Detector]]:
        """The members by tower pass, when one pixel tensor can carry every pass: one frozen
        tower, precision and decoding, each view one crop. One group: ``[B, 3, S, S]`` pixels;
        several (a native crop and the whole picture): ``[B, views, 3, S, S]``, one per group."""
        groups = pass_groups(self.members)
        dets = [d for g in groups for d in g.values()]
        shared = {(d.backbone_spec, d.precision, d.decode) for d in dets}
        if not all(map(shares_tower_pass, dets)) or len(shared) > 1:
            raise InputError("this ensemble's members read different towers or precisions: score it with "
                             "predict(), which prepares each its own")
        if len(groups) > 1 and any(d.view.crops > 1 for d in dets):
            raise InputError("this ensemble's members read different views, one of several crops: score it "
                             "with predict(), which prepares each its own")
        return [list(g.values()) for g in groups]

    @property
    def preprocess_spec(self):
        """The members' pre-processing (their one tower's), when one pixel tensor serves them all."""
        return self.view_groups()[0][0].preprocess_spec

    def input_views(self) -> list[View]:
        """The views stacked in :meth:`forward`'s pixels, one per tower pass."""
        return [dets[0].view for dets in self.view_groups()]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Every member's logit, ``[B, members]`` in member order (the bare forward that
        ``benchmarks/throughput.py`` times and ONNX export traces): one tower pass per view
        group, ``pixels[:, k]`` for group k when there are several (:meth:`view_groups`)."""
        groups = self.view_groups()
        if len(groups) == 1:
            return group_logits(groups[0], pixels)
        column = {}
        for k, dets in enumerate(groups):
            for det, logit in zip(dets, group_logits(dets, pixels[:, k]).unbind(1)):
                column[id(det)] = logit
        return torch.stack([column[id(self.members[n])] for n in self.member_names], dim=1)

    def parameter_report(self) -> dict[str, Any]:
        return summed_parameters([(m.parameter_report(), m.backbone_spec if m.reads_frozen_tower else None)
                                  for m in self.members.values()])

    # ---- voting -------------------------------------------------------------------
    def vote(self, expert_probs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Soft voting: the weighted mean of the experts' probabilities."""
        total = sum(self.weights)
        return sum(w * expert_probs[n] for n, w in zip(self.member_names, self.weights)) / total

    def experts(self) -> list[Detector]:
        return list(self.members.values())

    def preparer(self) -> ViewPreparer | ViewsPreparer | ImageReader:
        """When one tower serves every member, the crops are cut and pre-processed once, in the
        reading thread, as for one detector (several views: stacked, :meth:`view_groups`);
        otherwise each input is read once for all experts (each cuts its own view from the
        decoded image), in draft only when every expert resizes."""
        try:
            groups = self.view_groups()
        except InputError:  # towers or precisions of their own
            groups = []
        if len(groups) > 1 or (groups and len(groups[0]) > 1):
            lead = groups[0][0]  # an exported graph: the torch tower stays unloaded
            spec = self.runner.preprocess_spec if self.runner is not None else lead.preprocess_spec
            if len(groups) == 1:
                return ViewPreparer(lead.view, spec, lead.decode)
            return ViewsPreparer(tuple(g[0].view for g in groups), spec, lead.decode)
        members = self.members.values()
        return ImageReader(draft_side(self.decode, not any(m.view.native for m in members),
                                      max(m.preprocess_spec.output_size for m in members)))

    @torch.no_grad()
    def score_batch(self, batch: PreparedBatch) -> list[Prediction]:
        by_input: dict[int, dict[str, Prediction]] = {}
        if isinstance(batch.pixels, torch.Tensor):  # crops prepared once: one tower pass per view
            per_member = (member_predictions(self.members, batch, self._logits(batch.pixels))  # the exported graph
                          if self.runner is not None else score_prepared(self.members, batch, self.forward))
            by_input = {i: {n: per_member[n][i] for n in self.member_names} for i in range(len(batch.names))}
        else:  # decoded images: each group of members cuts and scores its own
            names = [batch.names[i] for i in batch.rows]
            per_member = {}
            for group in pass_groups(self.members):
                per_member.update(score_group(group, batch.pixels, names))
            by_input = {i: {n: per_member[n][k] for n in self.member_names} for k, i in enumerate(batch.rows)}
        scored: dict[int, Prediction] = {}
        for i, preds in by_input.items():
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
            copy_members(out, {name: resolve_detector(source) for name, source in members.items()})
            det.root = str(out.resolve())
        else:
            det._members = {n: load_detector_dir(resolve_detector(s)) for n, s in members.items()}
            share_towers(det._members.values())
        views = {str(m.view) for m in det.members.values()}
        if len(views) == 1:  # what its config and detector_info() report; each member still cuts its own
            det.view = View.parse(views.pop())
        if out is not None:
            det.save(out)
        return det

    def loaded_from(self, folder: Path) -> None:
        self.root = str(Path(folder).resolve())

    def config(self) -> dict[str, Any]:
        """As any detector's, but members that cut different views leave no one view to name: the
        config then says ``"view": null`` and lists them (``member_views``, in member order)."""
        config = super().config()
        views = list(dict.fromkeys(str(m.view) for m in self.members.values()))
        if len(views) > 1:
            config["view"], config["member_views"] = None, views
        return config

    def save(self, folder: str | Path) -> Path:
        """The ensemble's config, and its members' folders when it is saved somewhere new."""
        folder = Path(folder)
        if self.root is not None and folder.resolve() != Path(self.root):
            copy_members(folder, {name: Path(self.root) / MEMBERS_DIR / name for name in self.member_names})
        return super().save(folder)

    def to_probability(self, logits: torch.Tensor) -> torch.Tensor:
        """The vote from ``[B, members]`` logits (the bare forward's), each through its member's calibration."""
        return self.vote({n: self.members[n].to_probability(logits[:, k]) for k, n in enumerate(self.member_names)})


def copy_members(folder: Path, sources: dict[str, Path]) -> None:
    """Each member's folder, whole (an exported graph included), into ``folder/members/<name>``."""
    for name, source in sources.items():
        dest = folder / MEMBERS_DIR / name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(source, dest)


def is_ensemble_folder(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() and (folder / MEMBERS_DIR).is_dir()


def summed_parameters(reports: Sequence[tuple[dict[str, Any], str | None]]) -> dict[str, Any]:
    """Experts' parameter counts together; a frozen tower that several share (named by its spec
    beside the report) is held once, so it counts once."""
    keys = ("total", "trainable", "frozen", "vision_tower")
    out = dict.fromkeys(keys, 0)
    held: set[str] = set()
    for report, tower in reports:
        again = report["vision_tower"] if tower is not None and tower in held else 0
        held.update([tower] if tower is not None else [])
        for k in keys:
            out[k] += report[k] - (again if k != "trainable" else 0)
    out["trainable_share_of_vision_tower"] = out["trainable"] / out["vision_tower"]
    return out


# ---- one tower pass for the members that read one frozen tower ----------------------------
def share_towers(members: Iterable[Detector]) -> None:
    """Members with a frozen tower of one spec hold one copy of it (the first one's)."""
    owners: dict[str, Detector] = {}
    for det in members:
        if det.reads_frozen_tower:
            owner = owners.setdefault(det.backbone_spec, det)
            if owner is not det:
                det.share_tower(owner)


def shares_tower_pass(det: Detector) -> bool:
    """Whether a member can read a tower pass run for others: a frozen tower, and no exported graph."""
    return det.reads_frozen_tower and det.runner is None


def pass_groups(members: dict[str, Detector]) -> list[dict[str, Detector]]:
    """Members one forward pass can serve: frozen tower of one spec, seen through one view, at
    one precision, with no exported graph. Every other member is a group of its own."""
    groups: dict[Any, dict[str, Detector]] = {}
    for name, det in members.items():
        key = (det.backbone_spec, str(det.view), det.precision, det.decode) if shares_tower_pass(det) else ("own", name)
        groups.setdefault(key, {})[name] = det
    return list(groups.values())


def score_group(group: dict[str, Detector], images: list[Any], names: list[str]) -> dict[str, list[Prediction]]:
    """Each member's predictions for ``images``; a group of several frozen-tower members runs the
    tower once (``encode(layers="all")`` computes every feature they read) and each its own head."""
    if len(group) == 1:
        (name, det), = group.items()
        return {name: det.predict(images, batch_size=max(1, len(names)), names=names)}
    return score_prepared(group, next(iter(group.values())).prepare_batch(images, names))


def score_prepared(group: dict[str, Detector], prepared: PreparedBatch,
                   forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, list[Prediction]]:
    """Each member's records for crops prepared once for the group's tower pass: ``forward``
    gives ``[B, members]`` logits (by default :func:`group_logits`; an ensemble of several views:
    its own forward), run at the members' one precision."""
    dets = list(group.values())
    for det in dets:
        det.eval()
    return member_predictions(group, prepared, dets[0]._logits(prepared.pixels, forward or partial(group_logits, dets)))


def member_predictions(members: dict[str, Detector], prepared: PreparedBatch, rows: list[Any]) -> dict[str, list[Prediction]]:
    """Each member's records from ``rows``: per crop, one logit per member (in order), or why it failed."""
    return {name: det.predictions_from_logits(prepared, [r if isinstance(r, str) else r[k] for r in rows])
            for k, (name, det) in enumerate(members.items())}


def group_logits(dets: list[Detector], pixels: torch.Tensor) -> torch.Tensor:
    """``[B, members]``: one tower pass (``encode(layers="all")`` computes every feature they
    read), then each member's head."""
    out = dets[0].backbone.encode(pixels, layers="all")
    return torch.stack([d.head_from_features(d.feature_of(out)).float() for d in dets], dim=1)
