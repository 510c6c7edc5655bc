"""Everything ``aigi serve`` can be told, with the safe defaults."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import InputError

MB = 1 << 20


@dataclass(frozen=True)
class ServeSettings:
    detector: str | None = None  # shipped name, detector folder or run folder (None: the default)
    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = 8000
    device: str = "cpu"
    precision: str | None = None  # fp32 | bf16 | int8 | auto; None: $AIGI_PRECISION, else auto (aigi.detectors.precision)
    runtime: str = "torch"  # torch | onnxruntime: a folder `aigi export --format onnx` wrote
    max_batch: int = 32  # images per forward pass
    max_wait_ms: float = 10.0  # how long the first image of a batch waits for company
    max_image_bytes: int = 20 * MB
    max_request_bytes: int = 100 * MB
    max_images: int = 64  # per request
    timeout_s: float = 120.0  # a request not answered by then gets a 503
    api_key: str | None = None  # when set, every /v1 request must send it (X-API-Key or Bearer)
    cors_origins: tuple[str, ...] = field(default_factory=tuple)  # CORS stays off unless listed
    threshold: float | None = None  # verdicts at this P(fake) instead of the detector's own (aigi serve --max-fpr)

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_images", "max_image_bytes", "max_request_bytes"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0 or self.timeout_s <= 0:
            raise InputError("--max-wait-ms must be ≥ 0 and the timeout positive")
        if not 0 < self.port < 65536:
            raise InputError(f"--port {self.port}: not a TCP port")
        from ..detectors.precision import check_choice, default_precision

        if self.precision is None:
            object.__setattr__(self, "precision", default_precision(self.runtime))
        check_choice(self.precision, self.runtime)  # refused before the server starts

    @classmethod
    def with_environment(cls, **kwargs) -> "ServeSettings":
        """``AIGI_API_KEY`` fills the key when none is given."""
        if not kwargs.get("api_key"):
            kwargs["api_key"] = os.environ.get("AIGI_API_KEY") or None
        return cls(**kwargs)
