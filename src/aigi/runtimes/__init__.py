"""Runtimes: what computes a detector's logits at inference.

``torch`` runs the detector's own modules (the default). ``onnxruntime`` runs the single graph
``aigi export DETECTOR --format onnx`` wrote beside it (tower and head, LTD's early exit
included, calibration folded in), without loading the tower's torch weights; pre-processing and
views stay in aigi, so both runtimes see the same pixels. Looked up in
:data:`aigi.registry.RUNTIMES`.
"""
