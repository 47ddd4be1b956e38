"""EC2 instance types (data/instance_types.yaml): specs, architecture, allocatable resources and on-demand prices."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from planning.gpus import FAMILY_GPU

DATA = Path(__file__).resolve().parent.parent / "data" / "instance_types.yaml"
# The values of the kubernetes.io/arch label EC2 instances carry: x86-64 and Graviton.
ARCHES = ("amd64", "arm64")


@dataclass(frozen=True)
class InstanceType:
    name: str
    family: str
    gpu_type: str | None  # our GPU type name (a100-80gb for p4de), None for CPU types
    gpus: int
    vcpu: int
    memory_mib: int
    alloc_cpu_m: int  # what pods can request, after kubelet and system reservations
    alloc_memory_mib: int
    on_demand: float  # USD/hour in PRICE_REGION
    arch: str  # kubernetes.io/arch: amd64 or arm64 (Graviton)
    alloc_pods: int  # the kubelet's max pods
    local_nvme_gb: int = 0  # instance store (NVMe SSD), GB; 0 for EBS-only types
    # T families: a baseline of CPU per vCPU, in percent; above it `unlimited` mode (their default) bills surplus
    # credits (data/instance_types.yaml). None for every other type.
    baseline_cpu_percent: int | None = None

    @property
    def burstable(self) -> bool:
        return self.baseline_cpu_percent is not None


@dataclass(frozen=True)
class InstanceData:
    types: dict[str, InstanceType]
    region: str  # region the prices are for
    prices_date: str

    def in_families(self, families: tuple[str, ...]) -> list[InstanceType]:
        return [t for t in self.types.values() if t.family in families]

    def cpu_types(self) -> dict[str, InstanceType]:
        """The types without GPUs: what the core node group and the CPU NodePool may use."""
        return {name: t for name, t in self.types.items() if not t.gpus}

    def family_arch(self) -> dict[str, str]:
        """Family -> architecture (every size of a family shares it)."""
        return {t.family: t.arch for t in self.types.values()}


@functools.lru_cache(maxsize=None)
def load_instances(path: Path = DATA) -> InstanceData:
    data = yaml.safe_load(Path(path).read_text())
    types = {}
    for name, row in data["instance_types"].items():
        if row.get("arch") not in ARCHES or bool(row.get("burstable")) != ("baseline_cpu_percent" in row):
            raise ValueError(f"{path}: {name} needs arch ({' or '.join(ARCHES)}), and baseline_cpu_percent exactly "
                             "when burstable")
        types[name] = InstanceType(
            name=name,
            family=row["family"],
            gpu_type=FAMILY_GPU.get(row["family"]) if row["gpus"] else None,
            gpus=row["gpus"],
            vcpu=row["vcpu"],
            memory_mib=row["memory_mib"],
            alloc_cpu_m=row["alloc_cpu_m"],
            alloc_memory_mib=row["alloc_memory_mib"],
            on_demand=float(row["on_demand"]),
            arch=row["arch"],
            alloc_pods=row["alloc_pods"],
            local_nvme_gb=int(row.get("local_nvme_gb") or 0),
            baseline_cpu_percent=row.get("baseline_cpu_percent") if row.get("burstable") else None,
        )
    return InstanceData(types=types, region=data["region"], prices_date=str(data["prices_date"]))
