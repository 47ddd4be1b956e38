"""GPU types as Karpenter labels them, and which EC2 families carry them.

Facts: Karpenter's instance-type reference (aws/karpenter-provider-aws @ 1d927085,
website/content/en/docs/reference/instance-types.md): labels karpenter.k8s.aws/instance-gpu-name and
instance-gpu-memory (MiB per GPU). p4d and p4de both say `a100`; only the memory tells 40 GB from 80 GB.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuType:
    label: str  # value of karpenter.k8s.aws/instance-gpu-name
    memory_mib: int  # value of karpenter.k8s.aws/instance-gpu-memory
    families: tuple[str, ...]  # EC2 instance families that carry it


GPU_TYPES: dict[str, GpuType] = {
    "t4": GpuType("t4", 16384, ("g4dn",)),
    "a10g": GpuType("a10g", 22888, ("g5",)),
    "l4": GpuType("l4", 22888, ("g6",)),
    "l40s": GpuType("l40s", 45776, ("g6e",)),
    "a100": GpuType("a100", 40960, ("p4d",)),
    "a100-80gb": GpuType("a100", 81920, ("p4de",)),
    "h100": GpuType("h100", 81920, ("p5",)),
    "h200": GpuType("h200", 144384, ("p5en",)),
}

FAMILY_GPU: dict[str, str] = {family: name for name, gpu in GPU_TYPES.items() for family in gpu.families}
GPU_FAMILIES: tuple[str, ...] = tuple(FAMILY_GPU)
