"""Distillation-guided gradient surgery (DGS-Net, arXiv 2511.13108).

DGS-Net fine-tunes a CLIP image tower with LoRA, but edits the gradient that
reaches the tower. Gradients are taken per sample with respect to the
*embeddings*:

* ``g_task = ∂L_img/∂f``    (student embedding, its own head's BCE)
* ``g_text = ∂L_text/∂t``   (frozen text tower's embedding of the caption)
* ``g_img  = ∂L_img^T/∂f^T`` (frozen copy of the original image tower)

Orthogonal suppression removes from ``g_task`` its component along
``u = normalize(relu(g_text))`` — the direction in the joint space that the
caption's semantics push — so the student does not learn content shortcuts;
prior alignment then adds ``β · min(g_img, 0)``, the teacher's descent
directions, so the student stays near what the pre-trained tower knew. The
result is back-propagated from ``f`` into the LoRA parameters with
``f.backward(g_final)``; the three heads learn from their own losses.
"""
from __future__ import annotations

import torch


def per_sample_embedding_grad(loss_per_sample: torch.Tensor, embedding: torch.Tensor,
                              retain_graph: bool = True) -> torch.Tensor:
    """``∂ loss_i / ∂ embedding_i`` for every sample i, in one backward pass.

    Sample i's loss depends only on row i of the embedding, so the gradient of
    the *sum* with respect to the batch is exactly the stack of per-sample
    gradients (a mean would scale them by 1/B).
    """
    (grad,) = torch.autograd.grad(loss_per_sample.sum(), embedding, retain_graph=retain_graph)
    return grad


def orthogonal_suppression(g_task: torch.Tensor, g_text: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``g_task − <g_task, u> u`` with ``u = normalize(relu(g_text))``, per row;
    rows whose ``relu(g_text)`` is all zero are left unchanged."""
    direction = torch.relu(g_text)
    norm = direction.norm(dim=-1, keepdim=True)
    active = norm > eps
    u = torch.where(active, direction / norm.clamp_min(eps), torch.zeros_like(direction))
    return g_task - (g_task * u).sum(dim=-1, keepdim=True) * u


def prior_alignment(g: torch.Tensor, g_img: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """``g + β · min(g_img, 0)``."""
    return g + beta * torch.clamp(g_img, max=0.0)


def surgered_gradient(g_task: torch.Tensor, g_text: torch.Tensor | None, g_img: torch.Tensor | None,
                      beta: float = 1.0, suppress: bool = True, align: bool = True) -> torch.Tensor:
    """The gradient DGS-Net sends into the student: suppression, then alignment
    (each can be switched off for the ablations)."""
    g = g_task
    if suppress and g_text is not None:
        g = orthogonal_suppression(g, g_text)
    if align and g_img is not None and beta:
        g = prior_alignment(g, g_img, beta)
    return g
