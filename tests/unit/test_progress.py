"""Progress: a bar on a terminal, a dozen plain lines in a log."""

from __future__ import annotations

import io

from classifier.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(file, steps: int = 500) -> str:
    with progress(steps, "training", file=file) as bar:
        for step in range(steps):
            bar.update(loss=f"{1 / (step + 1):.3f}")
    return file.getvalue()


def test_a_log_gets_one_plain_line_per_tenth():
    log = run(io.StringIO())
    lines = log.splitlines()
    assert "\r" not in log
    assert len(lines) == 10
    assert lines[0].startswith("training: 50/500 (10%), loss 0.020, ")
    assert lines[-1].startswith("training: 500/500 (100%), loss 0.002, ")


def test_a_terminal_gets_the_bar():
    shown = run(Terminal())
    assert "\r" in shown and "500/500" in shown and "loss=0.002" in shown


def test_a_log_line_says_the_rate_in_its_unit():
    log = io.StringIO()
    with progress(40, "classifying", file=log, unit="img") as bar:
        for _ in range(10):
            bar.update(4)
    lines = log.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[-1].startswith("classifying: 40/40 (100%), ") and " img/s, " in lines[-1]


def test_a_total_planned_again_counts_from_then_on():
    for file in (io.StringIO(), Terminal()):
        with progress(100, "training", file=file) as bar:
            for _ in range(30):
                bar.update()
            bar.set_total(60)  # the budget buys 60 steps, not 100
            for _ in range(30):
                bar.update()
        assert "60/60" in file.getvalue() and "100/100" not in file.getvalue()
