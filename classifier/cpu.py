"""What this CPU offers for the model, and what torch makes of it: for /info, cards and benchmarks.

    >>> cpu = describe_cpu()
    >>> cpu.kind                     # "avx512-bf16" on a Zen 4, "avx2" on a Zen 3 (or emulated)
    >>> cpu.features.avx512_bf16     # what the CPU has, from /proc/cpuinfo
    >>> cpu.torch_isa, cpu.bf16      # what torch's kernels and oneDNN use

A CPU's own features and what torch uses can differ: oneDNN's `ONEDNN_MAX_CPU_ISA` and ATen's
`ATEN_CPU_CAPABILITY` cap them (that is how a newer CPU stands in for an older one), so both are
reported, with the switches in effect. torch is imported only when asked what it uses: the
schemas import this module in processes that never run the model (see `classifier.artifact`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from pydantic import BaseModel, Field

# the switches that make torch use less than the CPU has (documented by oneDNN and ATen)
ISA_SWITCHES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
# what the older kind of machine this project runs on has: AVX2 and FMA, no AVX-512, no bf16
EMULATE = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


class CpuFeatures(BaseModel):
    """The instruction sets that matter for ResNet50, as the CPU reports them."""

    avx2: bool
    avx512: bool = Field(description="AVX-512 F: wider vectors for fp32.")
    avx512_bf16: bool = Field(description="bf16 dot products: bf16 at about twice fp32's speed.")
    vnni: bool = Field(description="AVX-512 VNNI or AVX-VNNI: int8 dot products.")
    amx: bool = Field(description="AMX tiles (Intel Sapphire Rapids and newer): bf16 and int8.")


class CpuInfo(BaseModel):
    model: str = Field(examples=["AMD EPYC 9R14"])
    cores: int = Field(description="Cores this process may run on.")
    features: CpuFeatures
    torch_isa: str = Field(description="The instruction set torch's own kernels use.")
    bf16: bool = Field(description="Whether oneDNN runs bf16 natively here (else fp32 is faster).")
    kind: str = Field(
        description="What the model runs on, in short: amx, avx512-bf16, avx512, avx2 or "
        "default; benchmarks and the demo's card are labelled with it.",
        examples=["avx512-bf16"],
    )
    switches: dict[str, str] = Field(
        default_factory=dict, description="ONEDNN_MAX_CPU_ISA and ATEN_CPU_CAPABILITY, if set."
    )

    def summary(self) -> str:
        """One line for logs and reports: model, cores, what the CPU has, what torch uses."""
        has = [name for name, present in self.features.model_dump().items() if present]
        switches = "".join(f", {name}={value}" for name, value in self.switches.items())
        return (
            f"{self.model}, {self.cores} cores ({', '.join(has) or 'no AVX2'}); torch uses "
            f"{self.torch_isa}{', bf16' if self.bf16 else ', no bf16'}{switches}"
        )


def cpu_supports_bf16() -> bool:
    """AVX-512 BF16 or AMX, and oneDNN allowed to use them: bf16 matrix maths at full speed."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@functools.cache
def describe_cpu() -> CpuInfo:
    import torch

    flags, model = _cpuinfo()
    features = CpuFeatures(
        avx2="avx2" in flags,
        avx512="avx512f" in flags,
        avx512_bf16="avx512_bf16" in flags,
        vnni=bool({"avx512_vnni", "avx_vnni"} & flags),
        amx="amx_tile" in flags,
    )
    torch_isa = torch.backends.cpu.get_cpu_capability()
    bf16 = cpu_supports_bf16()
    return CpuInfo(
        model=model,
        cores=len(os.sched_getaffinity(0)),
        features=features,
        torch_isa=torch_isa,
        bf16=bf16,
        kind=_kind(torch_isa, bf16, features),
        switches={name: os.environ[name] for name in ISA_SWITCHES if name in os.environ},
    )


def _kind(torch_isa: str, bf16: bool, features: CpuFeatures) -> str:
    """Named for what torch uses, which the switches can lower below what the CPU has."""
    avx512 = torch_isa.startswith("AVX512")
    if bf16 and features.amx and avx512:
        return "amx"
    if bf16 and avx512:
        return "avx512-bf16"
    if avx512:
        return "avx512"
    return "avx2" if torch_isa == "AVX2" else "default"


def _cpuinfo() -> tuple[set[str], str]:
    """The first processor's flags and model name from /proc/cpuinfo (nothing elsewhere)."""
    flags: set[str] = set()
    model = "unknown CPU"
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return flags, model
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif not line.strip() and flags:
            break
    return flags, model
