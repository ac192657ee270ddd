"""Server-Timing: how long each phase of one request took, in a header the client can read."""

from __future__ import annotations


class Timing:
    """Seconds per phase of one request, sent back as a Server-Timing header (milliseconds).

    For several images (/predict_batch), each phase is the slowest image's.
    """

    def __init__(self, headers) -> None:
        self.phases: dict[str, float] = {}
        self.headers = headers

    def add_all(self, phases: dict[str, float]) -> None:
        for phase, seconds in phases.items():
            self.add(phase, seconds)

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = max(seconds, self.phases.get(phase, 0.0))
        self.headers["Server-Timing"] = ", ".join(
            f"{name};dur={value * 1000:.1f}" for name, value in self.phases.items()
        )
