"""Uploads to model-ready pixels in a few threads of their own, off the event loop.

preparing = PreparePool(card.preprocessing, settings)
pixels = await preparing.prepare(lambda: upload, phases)   # (crop, crop, 3) uint8
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .preprocess import Preprocessing
from .settings import Settings


class PreparePool:
    """Decoding, validation, resizing and cropping, one thread per core by default: decoding more
    images at once than there are cores only slows the model down, so uploads wait their turn
    here instead."""

    def __init__(self, preprocessing: Preprocessing, settings: Settings) -> None:
        self.preprocessing = preprocessing
        self.max_pixels = settings.max_image_pixels
        self.fast_jpeg = settings.fast_jpeg_decode
        self.pool = ThreadPoolExecutor(
            settings.prepare_threads or len(os.sched_getaffinity(0)), thread_name_prefix="prepare"
        )

    async def prepare(self, read: Callable[[], bytes], phases: dict[str, float]) -> np.ndarray:
        """The bytes `read()` gives (in the pool: base64 decoding is work too) as validated,
        resized, cropped pixels; `InvalidImage` if unusable. The seconds go in
        `phases["prepare"]`. Admission bounds every body, so every image in it."""
        started = time.perf_counter()
        pixels = await asyncio.get_running_loop().run_in_executor(
            self.pool,
            lambda: self.preprocessing.prepare_bytes(
                read(), max_pixels=self.max_pixels, fast_jpeg=self.fast_jpeg
            ),
        )
        phases["prepare"] = time.perf_counter() - started
        return pixels

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
