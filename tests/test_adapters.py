"""LoRA and the mixture of LoRA experts: identity at init, top-1 routing, the
load-balancing loss, dispatch (only the chosen expert runs), merging."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from aigi.adapters import LoRA, LoRALinear
from aigi.methods.mole.experts import MixtureOfLoRAExperts, MLPWithExperts


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_lora_with_b_zero_adds_nothing():
    torch.manual_seed(0)
    base = nn.Linear(16, 24)
    wrapped = LoRALinear(base, rank=4)
    x = _x(5, 16)
    assert torch.equal(wrapped(x), base(x))
    assert not base.weight.requires_grad and wrapped.lora.A.requires_grad


def test_lora_scale_and_merge():
    torch.manual_seed(0)
    lora = LoRA(8, 8, rank=4, alpha=8.0)
    nn.init.normal_(lora.B)
    x = _x(3, 8)
    assert lora.scale == 2.0
    assert torch.allclose(lora(x), 2.0 * x @ lora.A.T @ lora.B.T, atol=1e-6)
    wrapped = LoRALinear(nn.Linear(8, 8), rank=4)
    nn.init.normal_(wrapped.lora.B)
    assert torch.allclose(wrapped.merged()(x), wrapped(x), atol=1e-5)


def _trained_mixture(seed=0, **kw) -> MixtureOfLoRAExperts:
    torch.manual_seed(seed)
    mix = MixtureOfLoRAExperts(16, **kw)
    for lora in [mix.shared, *mix.experts]:
        if lora is not None:
            nn.init.normal_(lora.B, std=0.1)
    return mix


def test_mixture_is_zero_at_init():
    mix = MixtureOfLoRAExperts(16)
    assert torch.equal(mix(_x(2, 7, 16)), torch.zeros(2, 7, 16))


def test_top1_routing_selects_argmax_and_scales_by_gate():
    mix = _trained_mixture()
    x = _x(2, 9, 16)
    out = mix(x)
    flat = x.reshape(-1, 16)
    gates = torch.softmax(mix.router(flat), dim=-1)
    choice = gates.argmax(dim=-1)
    assert torch.equal(mix.last_stats.assignment.reshape(-1), choice)
    expected = mix.shared(flat) + torch.stack(
        [gates[t, choice[t]] * mix.experts[int(choice[t])](flat[t]) for t in range(flat.shape[0])])
    assert torch.allclose(out.reshape(-1, 16), expected, atol=1e-6)


def test_only_the_chosen_expert_runs_per_token():
    mix = _trained_mixture()
    x = _x(3, 11, 16)
    seen = {j: 0 for j in range(3)}
    hooks = [e.register_forward_hook(lambda m, i, o, j=j: seen.__setitem__(j, seen[j] + i[0].shape[0]))
             for j, e in enumerate(mix.experts)]
    mix(x)
    for h in hooks:
        h.remove()
    assert sum(seen.values()) == 33  # every token through exactly one routed expert
    assert [seen[j] for j in range(3)] == mix.last_stats.counts.tolist()


def test_load_balancing_loss_hand_computed():
    mix = MixtureOfLoRAExperts(2, shared_rank=None, expert_ranks=(1, 1))
    with torch.no_grad():
        mix.router.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    # tokens: (2,0) → gates softmax(2,0) = (0.8808, 0.1192) → expert 0
    #         (0,1) → softmax(0,1) = (0.2689, 0.7311) → expert 1
    #         (3,0) → softmax(3,0) = (0.9526, 0.0474) → expert 0
    x = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]]])
    mix(x)
    f = torch.tensor([2 / 3, 1 / 3])
    p = torch.tensor([(0.880797 + 0.268941 + 0.952574) / 3, (0.119203 + 0.731059 + 0.047426) / 3])
    assert torch.allclose(mix.last_stats.fraction, f)
    assert torch.allclose(mix.last_stats.probability, p, atol=1e-5)
    assert mix.last_stats.load_balancing_loss().item() == pytest.approx(2 * float((f * p).sum()), abs=1e-5)
    # perfectly balanced routing with uniform gates gives the minimum, 1
    uniform = MixtureOfLoRAExperts(2, shared_rank=None, expert_ranks=(1, 1))
    nn.init.zeros_(uniform.router.weight)
    uniform(torch.tensor([[[1.0, 0.0]]]))
    assert uniform.last_stats.probability.tolist() == [0.5, 0.5]


def test_load_balancing_loss_trains_the_router():
    mix = _trained_mixture()
    mix(_x(2, 5, 16))
    mix.last_stats.load_balancing_loss().backward()
    assert mix.router.weight.grad is not None and mix.router.weight.grad.abs().sum() > 0


def test_merged_shared_expert_gives_same_output():
    mix = _trained_mixture()
    x = _x(2, 6, 16)
    before = mix(x)
    mix.merge_shared()
    assert isinstance(mix.shared, nn.Linear)
    assert torch.allclose(mix(x), before, atol=1e-6)


def test_mlp_bypass_adds_to_the_frozen_mlp():
    torch.manual_seed(1)
    mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
    mix = _trained_mixture()
    wrapped = MLPWithExperts(mlp, mix)
    x = _x(2, 4, 16)
    assert torch.allclose(wrapped(x), mlp(x) + mix(x), atol=1e-6)


@pytest.mark.parametrize("shared,experts", [(8, ()), (None, (4, 8, 16)), (8, (4, 8, 16))])
def test_variants_shapes(shared, experts):
    mix = _trained_mixture(shared_rank=shared, expert_ranks=experts)
    assert mix(_x(2, 3, 16)).shape == (2, 3, 16)
    assert (mix.router is None) == (len(experts) == 0)
