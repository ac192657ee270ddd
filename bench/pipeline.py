"""The service without HTTP: `python -m bench.pipeline --tag TAG` prints one JSON line.

Closed-loop callers in one process decode the benchmark's photos in a pool of one thread per core
and hand the pixels to the service's own continuous batcher, exactly as the service does after
it has parsed a request. What this reaches is the most the service could serve on this machine
with these inputs; the gap between it and the service over HTTP is the cost of HTTP and BentoML.
Run by `python -m bench` in a process of its own: like the service, it must never run torch on
its main thread (see `classifier.batching.Batcher`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--tag", required=True, help="model store tag")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--images", type=int, default=24)
    args = parser.parse_args(argv)

    import bentoml
    import numpy as np

    from bench.inputs import photos
    from classifier.artifact import load_model
    from classifier.batching import Batcher
    from classifier.inference import Predictor
    from classifier.settings import get_settings

    settings = get_settings()
    stored = bentoml.models.get(args.tag)
    model = {}

    def load() -> None:  # on the batcher's thread, as in the service
        network, model["card"] = load_model(stored.path, stored.info.metadata)
        model["predictor"] = Predictor(network, model["card"], **settings.predictor_options())
        model["predictor"].warm_up()

    batcher = Batcher(
        lambda items: list(model["predictor"].predict(np.stack(items))),
        setup=load,
        max_batch_size=settings.max_batch_size,
        max_queue=10**6,
        take=lambda queued: model["predictor"].batch_size_for(queued),
    )
    card = model["card"]
    bodies = photos(args.images)
    pool = ThreadPoolExecutor(settings.prepare_threads or len(os.sched_getaffinity(0)))

    def prepare(body: bytes) -> np.ndarray:
        return card.preprocessing.prepare_bytes(
            body, max_pixels=settings.max_image_pixels, fast_jpeg=settings.fast_jpeg_decode
        )

    async def drive() -> int:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        measure_from, stop_at = start + 3, start + 3 + args.seconds
        done = 0

        async def caller(index: int) -> None:
            nonlocal done
            n = index
            while time.perf_counter() < stop_at:
                pixels = await loop.run_in_executor(pool, prepare, bodies[n % len(bodies)])
                await batcher.submit(pixels)
                n += args.clients
                if measure_from <= time.perf_counter() <= stop_at:
                    done += 1

        await asyncio.gather(*(caller(i) for i in range(args.clients)))
        return done

    cpu_before, wall_before = time.process_time(), time.perf_counter()
    completed = asyncio.run(drive())
    cpu_percent = 100 * (time.process_time() - cpu_before) / (time.perf_counter() - wall_before)
    batcher.close()
    result = {
        "clients": args.clients,
        "throughput": completed / args.seconds,
        "cpu_percent": cpu_percent,  # whole run, warm-up included
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
