"""Gradient surgery: orthogonality to the suppressed direction, the skip rule,
prior alignment, per-sample gradients, and equivalence with plain fine-tuning
when surgery has nothing to do."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from aigi.methods.dgs.surgery import (
    orthogonal_suppression,
    per_sample_embedding_grad,
    prior_alignment,
    surgered_gradient,
)


@pytest.mark.parametrize("seed", range(10))
def test_suppressed_gradient_is_orthogonal_to_relu_text_direction(seed):
    g = torch.Generator().manual_seed(seed)
    g_task, g_text = torch.randn(16, 64, generator=g, dtype=torch.float64), torch.randn(16, 64, generator=g, dtype=torch.float64)
    out = orthogonal_suppression(g_task, g_text)
    u = torch.nn.functional.normalize(torch.relu(g_text), dim=-1)
    assert torch.allclose((out * u).sum(-1), torch.zeros(16, dtype=torch.float64), atol=1e-12)
    # only the component along u is removed
    assert torch.allclose(out + (g_task * u).sum(-1, keepdim=True) * u, g_task, atol=1e-12)


def test_rows_without_positive_text_gradient_are_skipped():
    g_task = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    g_text = torch.tensor([[-1.0, -0.5, 0.0], [0.0, 2.0, 0.0]])
    out = orthogonal_suppression(g_task, g_text)
    assert torch.equal(out[0], g_task[0])                   # relu(g_text) = 0: unchanged
    assert torch.allclose(out[1], torch.tensor([1.0, 0.0, 3.0]))  # u = e2: its component removed


def test_prior_alignment_adds_only_the_teachers_negative_part():
    g = torch.tensor([[1.0, 1.0, 1.0]])
    g_img = torch.tensor([[-2.0, 0.5, 0.0]])
    assert torch.allclose(prior_alignment(g, g_img, beta=0.5), torch.tensor([[0.0, 1.0, 1.0]]))
    assert torch.equal(surgered_gradient(g, None, g_img, beta=0.0), g)


def test_per_sample_gradients_match_one_by_one():
    torch.manual_seed(0)
    head = nn.Linear(8, 1)
    f = torch.randn(5, 8, requires_grad=True)
    y = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    losses = nn.functional.binary_cross_entropy_with_logits(head(f).squeeze(-1), y, reduction="none")
    batch = per_sample_embedding_grad(losses, f)
    for i in range(5):
        fi = f[i : i + 1].detach().requires_grad_(True)
        li = nn.functional.binary_cross_entropy_with_logits(head(fi).squeeze(-1), y[i : i + 1])
        (gi,) = torch.autograd.grad(li, fi)
        assert torch.allclose(batch[i], gi[0], atol=1e-6)


def test_with_beta_zero_and_no_text_gradient_a_step_equals_plain_finetuning():
    """Back-propagating the surgered embedding gradient == the plain loss's gradient."""
    torch.manual_seed(1)
    student = nn.Sequential(nn.Linear(12, 8), nn.Tanh())  # stands in for the LoRA-adapted tower
    head = nn.Linear(8, 1)
    x, y = torch.randn(6, 12), torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])

    f = student(x)
    losses = nn.functional.binary_cross_entropy_with_logits(head(f).squeeze(-1), y, reduction="none")
    g_task = per_sample_embedding_grad(losses, f) / len(y)  # the mean loss's gradient
    g = surgered_gradient(g_task, torch.zeros_like(g_task), torch.randn_like(g_task), beta=0.0)
    student.zero_grad()
    f.backward(g)
    surgered = [p.grad.clone() for p in student.parameters()]

    student.zero_grad()
    nn.functional.binary_cross_entropy_with_logits(head(student(x)).squeeze(-1), y).backward()
    plain = [p.grad.clone() for p in student.parameters()]
    for a, b in zip(surgered, plain):
        assert torch.allclose(a, b, atol=1e-7)
