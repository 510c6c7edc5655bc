"""Adapters that make a frozen backbone trainable at low cost: LoRA and the mixture of LoRA experts."""
from .lora import LoRA, LoRALinear
from .mole import MixtureOfLoRAExperts, MLPWithExperts, RoutingStats

__all__ = ["LoRA", "LoRALinear", "MixtureOfLoRAExperts", "MLPWithExperts", "RoutingStats"]
