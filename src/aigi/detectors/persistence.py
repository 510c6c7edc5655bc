"""How a detector is written and rebuilt: ``config.json`` (method, backbone spec,
threshold, calibration, params, metadata) + ``model.safetensors`` (never a pickle).

A mixin of :class:`~aigi.detectors.base.Detector`; the backbone's pretrained
weights are never copied into a detector's folder, its spec string is stored.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from safetensors.torch import save_file

from ..backbones import DEFAULT_BACKBONE
from ..backbones.views import View
from .folders import CONFIG_FILE, FORMAT_VERSION, WEIGHTS_FILE

if TYPE_CHECKING:
    from ..backbones import VisionBackbone

D = TypeVar("D", bound="Persistence")



class Persistence:
    """Configuration (``params``, the params schema, ``config``), the saved state, save and rebuild."""

    def params(self) -> dict[str, Any]:
        """Constructor arguments besides backbone/threshold (JSON-serialisable)."""
        return {}

    @classmethod
    def params_schema(cls) -> type:
        """The ``params:`` a recipe may give: a dataclass made from the constructor's signature."""
        from ..config.checked import signature_dataclass

        return signature_dataclass(cls.__init__, f"{cls.__name__}Params", skip=("backbone", "threshold"))

    @classmethod
    def backbone_params(cls, backbone: VisionBackbone) -> dict[str, Any]:
        """Constructor arguments read off the backbone (widths, depth); a recipe may override them."""
        return {}

    def config(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "detector": self.name,
            "backbone": self.backbone_spec,
            "threshold": self.threshold,
            "calibration": self.calibration,
            "view": str(self.view),
            "params": self.params(),
            "metadata": self.metadata,
        }

    def state_to_save(self) -> dict[str, torch.Tensor]:
        """What goes into model.safetensors (adapted detectors leave the pretrained weights out)."""
        return self.state_dict()

    def load_saved_state(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state)

    def loaded_from(self, folder: Path) -> None:
        """Called after loading, with the detector's folder (an ensemble finds its members there)."""

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_to_save().items()}
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"detector": self.name})
        (folder / CONFIG_FILE).write_text(json.dumps(self.config(), indent=2) + "\n")
        return folder

    @classmethod
    def from_config(cls: type[D], config: dict[str, Any]) -> D:
        det = cls(backbone=config.get("backbone", DEFAULT_BACKBONE), threshold=config.get("threshold", 0.5),
                  **config.get("params", {}))
        det.metadata = dict(config.get("metadata", {}))
        det.calibration = config.get("calibration")
        det.view = View.parse(config.get("view") or "resize")  # null: an ensemble whose members differ
        return det
