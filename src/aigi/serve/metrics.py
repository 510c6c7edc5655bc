"""Prometheus text exposition, written by hand: a handful of counters and one histogram
need no client library."""
from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)  # (route, status) → count
        self.images = 0
        self.errors: dict[str, int] = defaultdict(int)  # kind → count
        self.batches = 0
        self._buckets = [0] * len(BUCKETS)
        self._count = 0
        self._sum = 0.0

    def request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            self._count += 1
            self._sum += seconds
            for i, edge in enumerate(BUCKETS):
                if seconds <= edge:
                    self._buckets[i] += 1

    def scored(self, n: int) -> None:
        with self._lock:
            self.images += n
            self.batches += 1

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP aigi_requests_total HTTP requests by route and status.",
                     "# TYPE aigi_requests_total counter"]
            lines += [f'aigi_requests_total{{route="{r}",status="{s}"}} {n}' for (r, s), n in sorted(self.requests.items())]
            lines += ["# HELP aigi_images_scored_total Images scored.", "# TYPE aigi_images_scored_total counter",
                      f"aigi_images_scored_total {self.images}",
                      "# HELP aigi_batches_total Batched forward passes.", "# TYPE aigi_batches_total counter",
                      f"aigi_batches_total {self.batches}",
                      "# HELP aigi_image_errors_total Images refused, by kind.", "# TYPE aigi_image_errors_total counter"]
            lines += [f'aigi_image_errors_total{{kind="{k}"}} {n}' for k, n in sorted(self.errors.items())]
            lines += ["# HELP aigi_request_seconds Request latency.", "# TYPE aigi_request_seconds histogram"]
            lines += [f'aigi_request_seconds_bucket{{le="{edge}"}} {n}' for edge, n in zip(BUCKETS, self._buckets)]
            lines += [f'aigi_request_seconds_bucket{{le="+Inf"}} {self._count}',
                      f"aigi_request_seconds_sum {self._sum:.6f}", f"aigi_request_seconds_count {self._count}"]
        return "\n".join(lines) + "\n"
