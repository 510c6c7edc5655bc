"""Micro-batching: images from concurrent requests share one forward pass.

Requests put their decoded images on a queue and wait on futures. One task takes
the first waiting image, gathers more until ``max_batch`` images or ``max_wait_ms``
have passed, and runs the batch on the model's own thread (the event loop never
computes); while a batch runs, the next one fills up. The detector's ``predict``
keeps its guarantees here: an image that cannot be prepared gets its own error,
and a batch that runs out of memory is scored image by image.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from PIL import Image

from .metrics import Metrics


class MicroBatcher:
    def __init__(self, detector, max_batch: int, max_wait_ms: float, metrics: Metrics | None = None) -> None:
        self.detector, self.max_batch, self.max_wait = detector, max_batch, max_wait_ms / 1000.0
        self.metrics = metrics or Metrics()
        self._queue: asyncio.Queue[tuple[Image.Image, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None
        self._model = ThreadPoolExecutor(1, thread_name_prefix="aigi-model")  # one forward pass at a time

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._model.shutdown(wait=False, cancel_futures=True)

    async def score(self, images: Sequence[Image.Image]) -> list[Any]:
        """One prediction per image, in order (awaits the batches they land in)."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in images]
        for image, future in zip(images, futures):
            self._queue.put_nowait((image, future))  # type: ignore[union-attr]
        return list(await asyncio.gather(*futures))

    async def _gather(self) -> list[tuple[Image.Image, asyncio.Future]]:
        queue = self._queue
        batch = [await queue.get()]  # type: ignore[union-attr]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            if not queue.empty():  # type: ignore[union-attr]
                batch.append(queue.get_nowait())  # type: ignore[union-attr]
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), left))  # type: ignore[union-attr]
            except asyncio.TimeoutError:
                break
        return [(image, future) for image, future in batch if not future.done()]  # drop timed-out requests' images

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            images = [image for image, _ in batch]
            try:
                preds = await loop.run_in_executor(self._model, self._predict, images)
            except Exception as exc:  # noqa: BLE001 - a bug in one batch must not stop the service
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.metrics.scored(len(images))
            for (_, future), pred in zip(batch, preds):
                if not future.done():
                    future.set_result(pred)

    def _predict(self, images: list[Image.Image]) -> list[Any]:
        return self.detector.predict(images, batch_size=len(images))
