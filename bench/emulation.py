"""`--emulate avx2`: a benchmark run as on the older kind of CPU, on a newer one.

oneDNN's `ONEDNN_MAX_CPU_ISA` and ATen's `ATEN_CPU_CAPABILITY` keep torch to AVX2 and fp32, as on
an AMD EPYC Zen 3 (no AVX-512, no bf16). Both are read when torch starts, so the benchmark starts
again in a process that has them, and the servers it starts inherit them. Cores of a newer CPU are
faster per clock, so compare ratios, not absolute figures (BENCHMARKS.md says how close it comes).
"""

from __future__ import annotations

import argparse
import os
import sys

from classifier.cpu import EMULATE


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--emulate",
        choices=sorted(EMULATE),
        help="run as on an older CPU: avx2 = AVX2 and fp32 only, no AVX-512, no bf16 (Zen 3)",
    )


def restart_if_asked(args: argparse.Namespace, module: str, argv: list[str] | None) -> None:
    """Start `python -m module` again with the same arguments (`argv`, else the command
    line's) and the switches of `args.emulate`, unless they are set; never returns if it
    restarts."""
    if args.emulate is None:
        return
    switches = EMULATE[args.emulate]
    if all(os.environ.get(name) == value for name, value in switches.items()):
        return
    print(f"== emulating {args.emulate}: {' '.join(f'{k}={v}' for k, v in switches.items())}")
    sys.stdout.flush()
    command = [sys.executable, "-m", module, *(sys.argv[1:] if argv is None else argv)]
    os.execve(sys.executable, command, {**os.environ, **switches})
