"""GPU types as Karpenter labels them, which EC2 families carry them, and GPU fitting: which GPU types and instance
types of the allowed families can run one replica of a model (`fit_model`, with the FitError that says what would).

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


# What a GPU node's DaemonSets take besides the model pod (VPC CNI, kube-proxy, CSI node plugins, device plugin,
# DCGM exporter): the model's requests must fit in what is allocatable minus this.
DAEMONSET_CPU_M = 500
DAEMONSET_MEMORY_MIB = 1024


class FitError(ValueError):
    """No allowed instance can hold the model; the message says what it needs and what would work."""


@dataclass(frozen=True)
class GpuFit:
    gpus: int  # GPUs per replica
    gpu_types: tuple[str, ...]  # GPU types that hold the model with that many GPUs, on allowed families
    instance_types: tuple[str, ...]  # allowed instance types that fit one replica, cheapest first


def fits(instance, gpu_type: str, gpus: int, cpu: int, memory_gib: int) -> bool:
    return (instance.gpu_type == gpu_type and instance.gpus >= gpus
            and instance.alloc_cpu_m - DAEMONSET_CPU_M >= cpu * 1000
            and instance.alloc_memory_mib - DAEMONSET_MEMORY_MIB >= memory_gib * 1024)


def fit_model(min_gpus: dict[str, int], cpu: int, memory_gib: int, gpus: int | None,
              families: tuple[str, ...], instances: list) -> GpuFit:
    """Which GPU types (and instances) of the allowed families can run one replica.

    `min_gpus` is the catalog's fewest GPUs per type; `gpus` the requested count, or None for the count that runs
    cheapest. `instances` are InstanceType rows of every supported family.
    """

    def candidates(count: int, allowed: tuple[str, ...]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for gpu_type, need in min_gpus.items():
            if need > count:
                continue
            names = [i.name for i in instances
                     if i.family in allowed and fits(i, gpu_type, count, cpu, memory_gib)]
            if names:
                found[gpu_type] = names
        return found

    biggest = max((i.gpus for i in instances if i.family in families), default=0)
    where = f"gpu_instance_families ({', '.join(families)}, at most {biggest} GPUs per node)"
    if gpus and gpus > biggest:
        raise FitError(f"asks for {gpus} GPUs per replica, more than any instance in {where} has; "
                       f"allowed: gpus from 1 to {biggest}")
    counts = sorted({n for n in min_gpus.values()} | ({gpus} if gpus else set()))
    # Default count: the one whose cheapest fitting instance costs least (fewer GPUs on a tie); e.g. Mixtral on
    # p5/p5en runs on 2 x H100 (p5.48xlarge) for less than on 1 x H200 (p5en.48xlarge).
    by_name = {i.name: i for i in instances}
    options = []
    for count in ([gpus] if gpus else counts):
        found = candidates(count, families)
        if found:
            cheapest = min(by_name[n].on_demand for names in found.values() for n in names)
            options.append((cheapest, count, found))
    if options:
        _, count, found = min(options, key=lambda o: (o[0], o[1]))
        ordered = tuple(t for t in GPU_TYPES if t in found)
        # cheapest first; on a tie the one with fewer GPUs
        names = sorted({n for t in ordered for n in found[t]},
                       key=lambda n: (by_name[n].on_demand, by_name[n].gpus, n))
        return GpuFit(count, ordered, tuple(names))

    needs = ", ".join(f"{n} x {t}" for t, n in sorted(min_gpus.items(), key=lambda kv: list(GPU_TYPES).index(kv[0])))
    count = gpus or counts[0]
    would_work = sorted({by_name[n].family for names in candidates(count, GPU_FAMILIES).values() for n in names},
                        key=GPU_FAMILIES.index)
    hint = ""
    if would_work:
        hint = f"add {_or(would_work)} to gpu_instance_families"
    if gpus:
        other = [n for n in counts if n != gpus and candidates(n, families)]
        if other:
            hint = (hint + " or " if hint else "") + f"set gpus to {other[0]}"
    what = f"with {gpus} GPU{'s' if gpus != 1 else ''}" if gpus else "on any GPU count"
    raise FitError(f"fits no instance {what} in {where}; it needs {needs}, and {cpu} vCPU and {memory_gib} GiB of "
                   f"host memory per replica{'; ' + hint if hint else ''}")


def _or(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]

