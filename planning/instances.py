"""EC2 instance types (data/instance_types.yaml): specs, allocatable resources and on-demand prices."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from planning.gpus import FAMILY_GPU

DATA = Path(__file__).resolve().parent.parent / "data" / "instance_types.yaml"


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
    local_nvme_gb: int = 0  # instance store (NVMe SSD), GB; 0 for EBS-only types


@dataclass(frozen=True)
class InstanceData:
    types: dict[str, InstanceType]
    region: str  # region the prices are for
    prices_date: str

    def in_families(self, families: tuple[str, ...]) -> list[InstanceType]:
        return [t for t in self.types.values() if t.family in families]


@functools.lru_cache(maxsize=None)
def load_instances(path: Path = DATA) -> InstanceData:
    data = yaml.safe_load(Path(path).read_text())
    types = {}
    for name, row in data["instance_types"].items():
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
            local_nvme_gb=int(row.get("local_nvme_gb") or 0),
        )
    return InstanceData(types=types, region=data["region"], prices_date=str(data["prices_date"]))
