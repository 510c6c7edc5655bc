"""LoRA, the one low-rank adapter every method shares (a method's own adapters, such
as CLIPMoLE's routed mixture, live in its folder under :mod:`aigi.methods`)."""
from .lora import LoRA, LoRALinear

__all__ = ["LoRA", "LoRALinear"]
