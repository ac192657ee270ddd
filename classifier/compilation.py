"""Compile a model with PyTorch's compiler (inductor) for a fixed set of batch sizes.

    >>> use_cache_dir(Path("/var/cache/classifier"))     # before the first compilation
    >>> forward = compile_model(model, torch.device("cpu"))
    >>> sizes = compiled_batch_sizes(16)                  # 1, 2, 4, 8, 16
    >>> with compiling(len(sizes)):
    ...     for size in sizes: forward(example(size))    # each call compiles one graph
    >>> graphs_compiled()                                 # torch's own counter: 5

Each batch size is its own graph (`dynamic=False`), specialised and with the weights frozen into
it, so the caller pads every batch up to one of those sizes and nothing recompiles while serving.
Compiled code goes to a persistent cache: a restart with a warm cache skips code generation and
the C++ compiler.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


def compiled_batch_sizes(max_batch_size: int) -> tuple[int, ...]:
    """1, 2, 4, ... below `max_batch_size`, and `max_batch_size` itself: every batch then pads
    to less than twice its size, from a handful of graphs."""
    sizes = [1]
    while sizes[-1] * 2 < max_batch_size:
        sizes.append(sizes[-1] * 2)
    if max_batch_size > 1:
        sizes.append(max_batch_size)
    return tuple(sizes)


def padded_size(count: int, batch_sizes: tuple[int, ...]) -> int:
    """The smallest compiled batch size that holds `count` images."""
    fitting = [size for size in batch_sizes if size >= count]
    if not fitting:
        raise ValueError(f"a batch of {count} is larger than every compiled size {batch_sizes}")
    return min(fitting)


def missing_toolchain(device: torch.device) -> str | None:
    """Why inductor cannot compile for `device` on this machine, or None if it can."""
    if device.type == "cpu":
        from torch._inductor.cpp_builder import get_cpp_compiler

        try:
            get_cpp_compiler()
        except Exception:  # InvalidCxxCompiler, and anything the search trips over
            return "no C++ compiler found (inductor needs g++, or the one $CXX names)"
        return None
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "triton is not installed"
    return f"inductor does not compile for {device.type} here"


def use_cache_dir(directory: Path) -> None:
    """Keep inductor's compiled code (and, on GPUs, triton's kernels) in `directory`.

    A directory that outlives the process (a volume) turns the next start's compilation into
    cache look-ups. Read by inductor whenever it looks for its cache, so set it before the first
    compilation.
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(directory)


def compile_model(model: nn.Module, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """`model` compiled by inductor, one static graph per input shape, weights frozen.

    Freezing turns the weights into constants, which lets inductor fold batch norms into the
    convolutions and lay the weights out once for oneDNN (CPU) instead of on every call; on GPUs,
    CUDA graphs remove the per-kernel launch cost. Nothing compiles until the first call.
    """
    options: dict[str, bool] = {"freezing": True}
    if device.type == "cuda":
        options["triton.cudagraphs"] = True
    return torch.compile(model, dynamic=False, options=options)


def compiling(graphs: int):
    """A context in which `graphs` more graphs of one model compile, or an error is raised.

    Every batch size is a graph of the same Python function (the model's `forward`), and dynamo
    stops compiling a function after `recompile_limit` graphs (8 by default) and silently runs
    the rest eagerly: here it makes room for them all, and any limit still hit is an error, so
    that the caller serves the eager model knowingly instead of a mix without knowing.
    """
    from torch._dynamo import config

    return config.patch(
        recompile_limit=max(config.recompile_limit, 64, 2 * graphs),
        fail_on_recompile_limit_hit=True,
    )


def graphs_compiled() -> int:
    """Graphs torch has compiled in this process (its dynamo counter); a recompilation adds one."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def graphs_from_cache() -> int:
    """Graphs inductor has loaded from its persistent cache instead of generating them."""
    from torch._dynamo.utils import counters

    return counters["inductor"]["fxgraph_cache_hit"]


def release_compile_workers() -> None:
    """Stop inductor's pool of compiler processes, idle once every graph is compiled."""
    from torch._inductor.async_compile import shutdown_compile_workers

    shutdown_compile_workers()
