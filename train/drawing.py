"""Draw many images on every core: `draw_all(jobs, write)` runs `write(job)` for each job.

The workers come from a fresh server process that has imported only `write`'s module, not from
the caller, whose threads (torch's, a progress bar's) a fork would copy mid-flight; a worker
that dies fails the pool rather than hanging it. Each job draws and writes one file, named by
the job, so the files are the same however many processes draw them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from classifier.progress import progress

CHUNK = 128  # images a worker draws per task: enough to make passing them around negligible


def draw_all(jobs: Sequence, write: Callable, *, desc: str, processes: int | None = None) -> None:
    """`write(job)` for every job, in `processes` worker processes (one per core by default)."""
    processes = processes or len(os.sched_getaffinity(0))
    with progress(len(jobs), desc, unit="image") as bar:
        if processes == 1 or len(jobs) < 2 * CHUNK:  # fewer than two chunks: not worth a pool
            for job in jobs:
                write(job)
                bar.update()
            return
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([write.__module__])
        with ProcessPoolExecutor(processes, mp_context=context) as pool:
            for _ in pool.map(write, jobs, chunksize=CHUNK):
                bar.update()
