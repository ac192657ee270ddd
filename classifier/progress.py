"""Progress that reads well everywhere: a bar on a terminal, a few plain lines in a log.

with progress(total=300, desc="training") as bar:
    bar.update(loss=0.42)
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from tqdm import tqdm


class LogLines:
    """Progress as one plain line each time another tenth is done, or `every_s` seconds have
    passed: a log keeps a dozen lines, not a carriage return for every step."""

    def __init__(
        self, total: int, desc: str, file: TextIO, unit: str = "step", every_s: float = 30
    ) -> None:
        self.total, self.desc, self.file, self.unit, self.every_s = total, desc, file, unit, every_s
        self.done = 0
        self.started = self.last_line = time.monotonic()
        self.next_tenth = 1

    def set_total(self, total: int) -> None:
        """The whole is now `total` (a plan made once the first steps have been timed)."""
        self.total = total

    def update(self, n: int = 1, **postfix) -> None:
        self.done += n
        now = time.monotonic()
        tenth = 10 * self.done // max(self.total, 1)
        if tenth >= self.next_tenth or now - self.last_line >= self.every_s:
            self.next_tenth = tenth + 1
            self.last_line = now
            elapsed = now - self.started
            details = "".join(f", {name} {value}" for name, value in postfix.items())
            print(
                f"{self.desc}: {self.done}/{self.total} ({100 * self.done // max(self.total, 1)}%)"
                f"{details}, {self.done / max(elapsed, 1e-9):.1f} {self.unit}/s, {elapsed:.0f} s",
                file=self.file,
                flush=True,
            )


class Bar:
    """tqdm's bar, with the same `update(n, **postfix)` as LogLines."""

    def __init__(self, total: int, desc: str, file: TextIO, unit: str = "step") -> None:
        self.bar = tqdm(total=total, desc=desc, unit=unit, mininterval=2, file=file)

    def set_total(self, total: int) -> None:
        self.bar.total = total
        self.bar.refresh()

    def update(self, n: int = 1, **postfix) -> None:
        self.bar.update(n)
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)


@contextlib.contextmanager
def progress(
    total: int,
    desc: str,
    file: TextIO | None = None,
    unit: str = "step",
    every_s: float = 30,
) -> Iterator[LogLines | Bar]:
    """A bar when `file` (stderr by default) is a terminal, else LogLines every `every_s` at
    most."""
    file = file or sys.stderr
    if file.isatty():
        bar = Bar(total, desc, file, unit)
        try:
            yield bar
        finally:
            bar.bar.close()
    else:
        yield LogLines(total, desc, file, unit, every_s)
