"""ONNX export of a detector, and the onnxruntime runner that scores with it.

The graph maps normalised pixels ``[B, 3, S, S]`` to ``logit`` and ``prob_fake`` (the stored
calibration folded in); an ensemble whose members read one tower exports as one graph with
``[B, members]`` logits, and when they see the image through several views (a native crop and
the whole picture) its pixels stack them, ``[B, views, 3, S, S]``, one tower pass each.
``--int8`` quantises its MatMul weights dynamically, per channel and with a reduced (7-bit)
range: the u8 × s8 kernels of x86 CPUs without VNNI saturate on full-range weights (the fault
behind issue 13's failing CI), and 7 bits keep them exact everywhere.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..backbones.preprocess import PreprocessSpec
from ..detectors.folders import CONFIG_FILE
from ..errors import InputError

ONNX_FILE = "model.onnx"
OPSET = 17


class _Graph(nn.Module):
    """pixels → (logit, P(fake)): what an exported detector computes. An ensemble whose members
    read one tower gives ``[B, members]`` logits (each member's, uncalibrated) and the vote."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.experts = nn.ModuleList(detector.experts())  # an ensemble's members: registered, so traced as weights

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit = self.detector(pixels).float()
        return logit, self.detector.to_probability(logit)


def export_onnx(detector: Any, out: Path, int8: bool = False) -> Path:
    """Save ``detector`` to ``out`` (config + safetensors, so the folder is still a detector) and
    write its graph beside it; config.json records the graph, its pre-processing and its precision."""
    if detector.embeds_backbone:
        try:
            detector.merge_for_inference()  # LoRA / MoLE bypasses folded into dense weights
        except InputError:
            pass  # nothing to merge
    spec = detector.preprocess_spec  # an ensemble: one tower must serve all its members, else this refuses
    views = detector.input_views()
    out = Path(out)
    detector.save(out)
    graph = _Graph(detector).eval()
    size = (3, spec.output_size, spec.output_size)
    example = torch.zeros(2, *size) if len(views) == 1 else torch.zeros(2, len(views), *size)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused encoder-layer kernel (LTD) has no ONNX form
    try:
        _trace(graph, example, out / ONNX_FILE)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    if int8:
        _quantise(out / ONNX_FILE)
    config = json.loads((out / CONFIG_FILE).read_text())
    config["onnx"] = {"file": ONNX_FILE, "int8": int8, "opset": OPSET, "preprocess": asdict(spec),
                      "views": [str(v) for v in views]}
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return out


def _trace(graph: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about python control flow fixed at export
        torch.onnx.export(graph, (example,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=["pixels"], output_names=["logit", "prob_fake"],
                          dynamic_axes={"pixels": {0: "batch"}, "logit": {0: "batch"}, "prob_fake": {0: "batch"}})


def _quantise(path: Path) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise InputError('--int8 needs onnxruntime: pip install "aigi[onnx]"') from None
    import logging

    tmp = path.with_suffix(".int8.onnx")
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(logging.ERROR)  # onnxruntime's advice to pre-process (shape inference) is for static quantisation
    try:
        quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    finally:
        root.setLevel(level)
    tmp.replace(path)


class OrtRunner:
    """Logits from the exported graph, on onnxruntime's CPU provider."""

    def __init__(self, folder: Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise InputError('the onnxruntime runtime needs its extra: pip install "aigi[onnx]"') from None
        meta = json.loads((folder / CONFIG_FILE).read_text()).get("onnx")
        if not meta or not (folder / meta["file"]).is_file():
            raise InputError(f"{folder}: no ONNX graph; write one with: aigi export {folder} --out DIR --format onnx")
        spec = dict(meta["preprocess"])
        spec["mean"], spec["std"] = tuple(spec["mean"]), tuple(spec["std"])
        self.preprocess_spec = PreprocessSpec(**spec)
        self.int8 = bool(meta.get("int8"))
        self.name = "onnxruntime int8" if self.int8 else "onnxruntime"  # as results records name it
        self.session = ort.InferenceSession(str(folder / meta["file"]), providers=["CPUExecutionProvider"])

    def logits(self, pixels: torch.Tensor) -> list[float]:
        if not len(pixels):
            return []
        logit, _ = self.session.run(["logit", "prob_fake"], {"pixels": pixels.numpy()})
        return logit.tolist() if logit.ndim == 2 else [float(x) for x in logit.reshape(-1)]  # ensemble: per member


def attach(detector: Any, folder: Path) -> None:
    """Score ``detector`` through its exported graph (``folder``'s config.json names it) from now on."""
    detector.runner = OrtRunner(folder)
