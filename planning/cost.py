"""What a stack costs: per model (cheapest fitting instance, on-demand and spot estimate), Karpenter's CPU pool
(sized from its pods), fixed items, the original blueprint priced the same way, and each model's cold start.

Three figures: `idle` (every model at its min_replicas, 0 for a model that scales to zero, and what always runs),
`min` (one replica serving: each model at max(min_replicas, 1)) and `max` (max_replicas); each on two bases: the
spot basis (a spot estimate, at the low end of the family's typical discount, wherever the capacity types allow
spot: Karpenter prefers spot) and the on-demand basis (everything on demand). The core node group is on demand on
both (a managed node group). hourly_budget is checked against `max` on the spot basis.

Owns the estimate as a typed value (CostEstimate and its parts), how it is computed from the validated config and
the price data (data/instance_types.yaml, data/prices.yaml), the JSON the stack exports (`cost_estimate`,
`estimated_cost_per_hour`; the offline plan reads it back with `CostEstimate.from_json`), the plan's cost table
and the warnings `pulumi up` prints. An estimate, in the region the prices are for: no data transfer, NAT or EFS
throughput charges, no burstable (T) instances' surplus credits, no taxes.
"""

from __future__ import annotations

import functools
import math
import types
import typing
from dataclasses import dataclass, fields, is_dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from planning import coldstart, versions
from planning.catalog import CatalogModel
from planning.config import StackConfig, pool_switches
from planning.gpus import GPU_FAMILIES, FitError, fit_model
from planning.instances import InstanceData, InstanceType, load_instances
from planning.models import ModelRequest
from planning.pools import CPU_ROOT_VOLUME_GB, PodLoad, node_daemonsets, pool_load, size_cpu_pool
from planning.scaling import can_scale_to_zero
from planning.workloads import CPU_POOL_JOBS, OPEN_WEBUI_DATA_GB, PRECACHE_JOB, cpu_pool_workloads, \
    precache_download_minutes

PRICES = Path(__file__).resolve().parent.parent / "data" / "prices.yaml"


@functools.lru_cache(maxsize=None)
def load_prices(path: Path = PRICES) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


CONTROL_PLANE = "EKS control plane"  # the fixed item whose price depends on EKS support
SPOT, ON_DEMAND = "spot", "on-demand"


def as_json(value: Any) -> Any:
    """A cost value as the stack exports it: dataclasses as objects (fields in order), tuples as lists."""
    if is_dataclass(value):
        return {f.name: as_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [as_json(v) for v in value]
    return value


def from_json(kind: Any, value: Any) -> Any:
    """The inverse of `as_json`: `value` back as the type `kind` says, read from the dataclasses' field types
    (nested dataclasses, tuples of them, optional ones); anything else as it is."""
    if value is None:
        return None
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        [inner] = [a for a in args if a is not type(None)]
        return from_json(inner, value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(args[0], v) for v in value)
        return tuple(from_json(a, v) for a, v in zip(args, value))
    if is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(**{f.name: from_json(hints[f.name], value[f.name]) for f in fields(kind)})
    return value


@dataclass(frozen=True)
class Scales:
    """A figure at the three scales: idle (models at min_replicas, 0 when they scale to zero), min (one replica
    serving: max(min_replicas, 1)), max (max_replicas)."""

    idle: float
    min: float
    max: float


@dataclass(frozen=True)
class Bases:
    """A figure on the spot basis (spot estimates wherever spot is allowed) and on the on-demand basis."""

    spot: Scales
    on_demand: Scales


@dataclass(frozen=True)
class BasisPrice:
    """One price on each basis."""

    spot: float
    on_demand: float


@dataclass(frozen=True)
class FixedCost:
    """A cost that does not scale with replicas, the same on both bases (the core node group is on demand)."""

    item: str
    per_hour: float | None  # None: not in the price table
    detail: str


@dataclass(frozen=True)
class ColdStartEstimate:
    """A model's cold start with its weights in the EFS cache (planning/coldstart.py): all estimates."""

    gpu_node_s: int
    image_pull_s: int
    model_load_s: int
    total_s: int
    minutes: int  # rounded up
    # What one cold start costs beyond the hours a replica serves (spot basis): the NIM image through the NAT
    # gateway (a new node has no image; $/GB processed), the weights read from EFS (Elastic throughput bills reads
    # per GB), and the GPU node billed while it starts. A model at zero saves money only over idle gaps longer than
    # its idle time plus `break_even_minutes` (the wake's cost over the replica's hourly price).
    wake_cost: float
    break_even_minutes: int

    @classmethod
    def of(cls, parameters_b: float, per_replica_hour: float, prices: dict[str, Any]) -> ColdStartEstimate:
        start = coldstart.cold_start(parameters_b)
        wake = (coldstart.NIM_IMAGE_GB * prices["nat_gateway_per_gb"]
                + coldstart.weights_gb(parameters_b) * prices["efs_elastic_read_per_gb"]
                + per_replica_hour * start.total_s / 3600)
        return cls(start.gpu_node_s, start.image_pull_s, start.model_load_s, start.total_s, start.minutes,
                   round(wake, 3), math.ceil(wake / per_replica_hour * 60))


@dataclass(frozen=True)
class Replicas:
    """A model's replicas at each scale."""

    idle: int
    min: int
    max: int


def replicas_of(model: ModelRequest) -> Replicas:
    """idle: min_replicas (0 for a model that can scale to zero); min: one replica serving; max: max_replicas."""
    return Replicas(0 if can_scale_to_zero(model) else model.min_replicas, max(model.min_replicas, 1),
                    model.max_replicas)


@dataclass(frozen=True)
class ModelCost:
    """One model: the cheapest instance that fits a replica, one node per replica, with its root volume."""

    name: str
    instance_type: str
    gpus_per_replica: int
    gpus_per_node: int
    capacity_types: tuple[str, ...]
    on_demand_per_hour: float  # per replica (one node each)
    spot_estimate_per_hour: float | None  # None when the model may not run on spot
    spot_discount_percent: tuple[int, int] | None
    priced_as: str  # on the spot basis: spot when allowed (Karpenter prefers it), else on-demand
    min_replicas: int
    max_replicas: int
    replicas: Replicas
    per_hour: Bases  # instances and their root volumes
    cold_start: ColdStartEstimate

    @property
    def per_replica(self) -> float:
        """The instance price the spot basis charges for a replica."""
        return self.spot_estimate_per_hour if self.spot_estimate_per_hour is not None else self.on_demand_per_hour

    @property
    def instances_at_max(self) -> float:
        return self.per_replica * self.max_replicas


@dataclass(frozen=True)
class PoolNodeCost:
    """`count` CPU nodes of one type, each priced on the basis of the choice it belongs to."""

    instance_type: str
    arch: str
    count: int
    capacity_type: str  # spot (an estimate) or on-demand
    per_node_hour: float  # the instance alone
    spot_discount_percent: tuple[int, int] | None
    pods: tuple[str, ...]  # the workload replicas placed on these nodes

    @property
    def text(self) -> str:
        if self.capacity_type == SPOT:
            low, high = self.spot_discount_percent
            return f"{self.count} x {self.instance_type} spot est. ${self.per_node_hour:.3f}/h ({low}-{high}% off)"
        return f"{self.count} x {self.instance_type} on-demand ${self.per_node_hour:.3f}/h"


@dataclass(frozen=True)
class PoolChoice:
    """The cheapest CPU nodes on one basis that hold the pool's pods."""

    nodes: tuple[PoolNodeCost, ...]
    vcpus: int  # what Karpenter's `limits` count
    per_hour: float  # instances and their root volumes

    @property
    def text(self) -> str:
        return " + ".join(n.text for n in self.nodes) or "no node (no pod on the pool)"


@dataclass(frozen=True)
class CpuPoolCost:
    """Karpenter's CPU NodePool, sized from the pods that always run on it (planning/workloads.py CPU_POOL, those
    the config turns on) plus the node DaemonSets on each node; the same at every scale."""

    families: tuple[str, ...]
    capacity_types: tuple[str, ...]
    workloads: tuple[str, ...]
    requests: PodLoad  # the workloads together
    daemonsets_per_node: PodLoad
    root_volume_gb: int
    limit_vcpu: int
    spot: PoolChoice  # spot estimates where cpu_capacity_types allow spot
    on_demand: PoolChoice

    @property
    def within_limit(self) -> bool:
        return max(self.spot.vcpus, self.on_demand.vcpus) <= self.limit_vcpu

    @property
    def limit_message(self) -> str:
        return (f"cpu_limit {self.limit_vcpu} cannot hold the CPU pool's pods: the estimate's nodes have "
                f"{max(self.spot.vcpus, self.on_demand.vcpus)} vCPUs")


@dataclass(frozen=True)
class PrecacheCost:
    """A model's pre-cache Job (planning/workloads.py PRECACHE_JOB): one-off, while its cache fills; not in the
    hourly figures. Its requests on the cheapest allowed node that holds it, for the estimated download time."""

    model: str
    cache_gib: int
    download_minutes: float
    instance_type: str | None  # None: no allowed CPU type holds it
    per_run: BasisPrice | None  # USD, once


@dataclass(frozen=True)
class BlueprintItem:
    item: str
    per_hour: BasisPrice
    detail: str


@dataclass(frozen=True)
class BlueprintCost:
    """The original blueprint, priced from the same data the same way (blueprint_cost)."""

    name: str
    items: tuple[BlueprintItem, ...]
    per_hour: BasisPrice
    left_out: str


@dataclass(frozen=True)
class GpuLimitCheck:
    """Whether gpu_limit holds every model's nodes at max_replicas."""

    limit: int
    gpus_at_max_replicas: int
    ok: bool

    @property
    def message(self) -> str:
        return (f"gpu_limit {self.limit} cannot hold every model at max_replicas: that needs "
                f"{self.gpus_at_max_replicas} GPUs")


@dataclass(frozen=True)
class BudgetCheck:
    """Whether the estimate at max_replicas (spot basis) stays within hourly_budget, and if not what would fit."""

    hourly_budget: float
    ok: bool
    message: str


@dataclass(frozen=True)
class CostEstimate:
    """The whole estimate; `as_json()` is the stack's `cost_estimate` output."""

    region: str
    prices_region: str
    prices_date: str
    note: str
    eks_extended_support: bool
    fixed: tuple[FixedCost, ...]
    fixed_per_hour: float
    cpu_pool: CpuPoolCost
    models: tuple[ModelCost, ...]
    total_per_hour: Bases
    total_per_month: Bases
    blueprint: BlueprintCost
    vs_blueprint: Bases  # each total over the blueprint's on the same basis
    cold_start_sources: dict[str, str]
    precache: tuple[PrecacheCost, ...]
    gpu_limit: GpuLimitCheck
    budget: BudgetCheck | None  # None without hourly_budget

    @property
    def control_plane(self) -> FixedCost:
        return next(i for i in self.fixed if i.item == CONTROL_PLANE)

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and not self.budget.ok

    def as_json(self) -> dict[str, Any]:
        """The `cost_estimate` output."""
        return as_json(self)

    def per_hour_json(self) -> dict[str, Any]:
        """The `estimated_cost_per_hour` output: the spot basis, and the on-demand basis."""
        spot, od = self.total_per_hour.spot, self.total_per_hour.on_demand
        return {"idle": spot.idle, "min": spot.min, "max": spot.max,
                "on_demand": {"idle": od.idle, "min": od.min, "max": od.max}, "prices_region": self.prices_region}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CostEstimate:
        """The estimate back from its `cost_estimate` output."""
        return from_json(cls, data)

    def render(self) -> list[str]:
        """The plan's cost table: $/hour at idle, min and max on the spot basis, then the on-demand basis, the
        blueprint, the cold-start sources and the pre-cache Jobs."""
        def row(item: str, values: tuple[str, str, str], detail: str = "") -> str:
            return f"{item:<34} {values[0]:>8} {values[1]:>8} {values[2]:>8}  {detail}".rstrip()

        def three(s: Scales, fmt: str) -> tuple[str, str, str]:
            return format(s.idle, fmt), format(s.min, fmt), format(s.max, fmt)

        bp = self.blueprint.per_hour
        pool = self.cpu_pool
        lines = [self.note,
                 "idle: every model at min_replicas (0 when it scales to zero) and what always runs; min: one replica "
                 "serving (max(min_replicas, 1)); max: max_replicas.",
                 "Spot basis: a spot estimate (the low end of the family's typical discount) wherever the capacity "
                 "types allow spot; the core nodes are on demand. $/hour:", ""]
        lines.append(row("item", ("idle", "min", "max"), "detail"))
        for item in self.fixed:
            value = "unknown" if item.per_hour is None else f"{item.per_hour:.3f}"
            lines.append(row(item.item, (value,) * 3, item.detail))
        load, ds = pool.requests, pool.daemonsets_per_node
        lines.append(row("Karpenter CPU pool", (f"{pool.spot.per_hour:.3f}",) * 3,
                         f"{pool.spot.text}, {pool.root_volume_gb} GiB gp3 each: {load.pods} pods "
                         f"({load.cpu_m}m CPU, {load.memory_mib} MiB) + DaemonSets ({ds.cpu_m}m, {ds.memory_mib} MiB, "
                         f"{ds.pods} pods) per node"))
        for m in self.models:
            r = m.replicas
            if m.spot_estimate_per_hour is not None:
                low, high = m.spot_discount_percent
                price = (f"spot est. ${m.spot_estimate_per_hour:.3f}/h ({low}-{high}% off), on-demand "
                         f"${m.on_demand_per_hour:.3f}/h")
            else:
                price = f"on-demand ${m.on_demand_per_hour:.3f}/h (no spot)"
            lines.append(row(m.name, three(m.per_hour.spot, ".3f"),
                             f"{r.idle}/{r.min}/{r.max} x {m.instance_type} {price}"))
            c = m.cold_start
            lines.append(row(f"  cold start ~{c.minutes} min (est.)", ("",) * 3,
                             f"GPU node {c.gpu_node_s} s + image pull {c.image_pull_s} s + model load "
                             f"{c.model_load_s} s = {c.total_s} s"))
            lines.append(row(f"  each wake ~${c.wake_cost:.2f}", ("",) * 3,
                             f"image via NAT + weights read from EFS + the GPU while it starts: at zero it saves "
                             f"money over idle gaps of more than idle_minutes + ~{c.break_even_minutes} min"))
        lines.append(row("TOTAL per hour, spot basis", three(self.total_per_hour.spot, ".2f")))
        lines.append(row("  x the original blueprint", tuple(f"{v}x" for v in three(self.vs_blueprint.spot, ".2f")),
                         f"its ${bp.spot:.3f}/h on the spot basis (below)"))
        lines.append(row("TOTAL per month (730 h), spot", three(self.total_per_month.spot, ".0f")))
        od_pool = "" if pool.on_demand.nodes == pool.spot.nodes else f"; CPU pool {pool.on_demand.text}"
        lines.append(row("TOTAL per hour, on-demand basis", three(self.total_per_hour.on_demand, ".2f"),
                         f"every node on demand{od_pool}"))
        lines.append(row("  x the original blueprint",
                         tuple(f"{v}x" for v in three(self.vs_blueprint.on_demand, ".2f")),
                         f"its ${bp.on_demand:.3f}/h on demand"))
        lines += ["", f"The original blueprint ({self.blueprint.name}), one replica serving, priced the same way: "
                  f"${bp.spot:.3f}/h on the spot basis, ${bp.on_demand:.3f}/h on demand:",
                  f"  {'item':<28} {'spot':>7} {'on-dem.':>7}  detail"]
        for i in self.blueprint.items:
            lines.append(f"  {i.item:<28} {i.per_hour.spot:>7.3f} {i.per_hour.on_demand:>7.3f}  {i.detail}")
        lines.append(f"  Left out: {self.blueprint.left_out}")
        lines += ["", "Cold start (a model at zero, its first request; weights in the EFS cache): estimates from"]
        lines += [f"  - {source}" for source in self.cold_start_sources.values()]
        if self.precache:
            lines += ["", "Pre-cache Jobs (not in idle/min/max: each runs once, while its model's cache fills):"]
            for p in self.precache:
                if p.per_run is None:
                    lines.append(f"  - {p.model}: no allowed CPU instance type holds the Job ({PRECACHE_JOB.cpu_m}m, "
                                 f"{PRECACHE_JOB.memory_mib} MiB, {'/'.join(PRECACHE_JOB.arches)})")
                else:
                    lines.append(f"  - {p.model}: {p.cache_gib} GiB in ~{p.download_minutes:.0f} min (estimate) on "
                                 f"one {p.instance_type}: ~${p.per_run.spot:.3f} spot basis, "
                                 f"~${p.per_run.on_demand:.3f} on demand, once")
        if not self.gpu_limit.ok:
            lines += ["", f"WARNING: {self.gpu_limit.message} (raise gpu_limit or lower max_replicas)"]
        if not pool.within_limit:
            lines += ["", f"WARNING: {pool.limit_message} (raise cpu_limit)"]
        if self.over_budget:
            lines += ["", f"OVER BUDGET: {self.budget.message}"]
        return lines


# ----------------------------------------------------------------------------------------- pricing rules

def spot_estimate(it: InstanceType, prices: dict[str, Any]) -> tuple[float, tuple[int, int]]:
    """The spot estimate of an instance type: its on-demand price less the low end of its family's typical discount
    (the dearer case), and that discount range."""
    low, high = prices["spot_discount_percent"][it.family]
    return round(it.on_demand * (1 - low / 100), 4), (low, high)


def gp3_per_gb_hour(prices: dict[str, Any]) -> float:
    return prices["ebs_gp3_per_gb_month"] / prices["hours_per_month"]


def model_cost(model: ModelRequest, entry: CatalogModel, data: InstanceData, prices: dict[str, Any],
               node_volume: float) -> ModelCost:
    """`node_volume`: each GPU node's root volume, per hour."""
    name = model.instance_types[0]  # fitting puts the cheapest first
    it = data.types[name]
    spot = discount = None
    if SPOT in model.capacity_types:
        spot, discount = spot_estimate(it, prices)
    per_replica = spot if spot is not None else it.on_demand
    n = replicas_of(model)

    def scales(price: float) -> Scales:
        return Scales(*(round(k * (price + node_volume), 4) for k in (n.idle, n.min, n.max)))

    return ModelCost(
        name=model.name, instance_type=name, gpus_per_replica=model.gpus, gpus_per_node=it.gpus,
        capacity_types=tuple(model.capacity_types), on_demand_per_hour=it.on_demand, spot_estimate_per_hour=spot,
        spot_discount_percent=discount, priced_as=SPOT if spot is not None else ON_DEMAND,
        min_replicas=model.min_replicas, max_replicas=model.max_replicas, replicas=n,
        per_hour=Bases(scales(per_replica), scales(it.on_demand)),
        cold_start=ColdStartEstimate.of(entry.parameters_b, per_replica + node_volume, prices))


def cpu_node_price(it: InstanceType, capacity_types: tuple[str, ...], prices: dict[str, Any],
                   basis: str) -> tuple[float, str, tuple[int, int] | None]:
    """A CPU node's price on a basis: the spot estimate where spot is allowed on the spot basis, else on-demand."""
    if basis == SPOT and SPOT in capacity_types:
        price, discount = spot_estimate(it, prices)
        return price, SPOT, discount
    return it.on_demand, ON_DEMAND, None


def cpu_pool_cost(cfg: StackConfig, data: InstanceData, prices: dict[str, Any]) -> CpuPoolCost:
    """Karpenter's CPU NodePool: the cheapest nodes of cpu_instance_families that hold the pods the config runs
    there, on each basis (planning/pools.py size_cpu_pool). Raises CpuPoolFitError when a pod fits no allowed type
    (config validation refuses that first)."""
    switches = pool_switches(cfg.monitoring, cfg.open_webui, cfg.aiperf, cfg.models, gateway=cfg.gateway,
                             keys=cfg.api_keys)
    workloads = cpu_pool_workloads(switches)
    daemonsets = node_daemonsets(switches)
    types = data.in_families(cfg.cpu.instance_families)
    volume = CPU_ROOT_VOLUME_GB * gp3_per_gb_hour(prices)
    capacity = tuple(cfg.cpu.capacity_types)

    def choice(basis: str) -> PoolChoice:
        placed = size_cpu_pool(workloads, types, daemonsets,
                               lambda t: cpu_node_price(t, capacity, prices, basis)[0] + volume)
        nodes = []
        for group in placed:
            it = data.types[group.instance_type]
            price, kind, discount = cpu_node_price(it, capacity, prices, basis)
            nodes.append(PoolNodeCost(it.name, it.arch, group.count, kind, price, discount, group.pods))
        return PoolChoice(tuple(nodes), sum(data.types[n.instance_type].vcpu * n.count for n in nodes),
                          round(sum(n.count * (n.per_node_hour + volume) for n in nodes), 4))

    return CpuPoolCost(families=tuple(cfg.cpu.instance_families), capacity_types=capacity,
                       workloads=tuple(w.name for w in workloads), requests=pool_load(workloads),
                       daemonsets_per_node=daemonsets, root_volume_gb=CPU_ROOT_VOLUME_GB, limit_vcpu=cfg.cpu.limit,
                       spot=choice(SPOT), on_demand=choice(ON_DEMAND))


def precache_costs(cfg: StackConfig, data: InstanceData, prices: dict[str, Any]) -> tuple[PrecacheCost, ...]:
    """Each pre-cached model's Job: its requests on the cheapest allowed CPU type that holds them (beside the node
    DaemonSets, of an architecture its image runs on) for the estimated download time, on each basis."""
    [job] = CPU_POOL_JOBS.values()
    daemonsets = node_daemonsets(pool_switches(cfg.monitoring, cfg.open_webui, cfg.aiperf, cfg.models, gateway=cfg.gateway,
                             keys=cfg.api_keys))
    capacity = tuple(cfg.cpu.capacity_types)
    holding = [t for t in data.in_families(cfg.cpu.instance_families)
               if t.arch in job.arches and t.alloc_cpu_m - daemonsets.cpu_m >= job.cpu_m
               and t.alloc_memory_mib - daemonsets.memory_mib >= job.memory_mib and t.alloc_pods > daemonsets.pods]
    node = min(holding, key=lambda t: (cpu_node_price(t, capacity, prices, SPOT)[0], t.on_demand, t.name),
               default=None)
    found = []
    for m in cfg.models:
        entry = cfg.catalog.models[m.name]
        if not (entry.precache and m.precache):
            continue
        minutes = precache_download_minutes(entry.cache_gib)
        per_run = None if node is None else BasisPrice(
            round(cpu_node_price(node, capacity, prices, SPOT)[0] * minutes / 60, 4),
            round(node.on_demand * minutes / 60, 4))
        found.append(PrecacheCost(m.name, entry.cache_gib, round(minutes, 1), node.name if node else None, per_run))
    return tuple(found)


# The original blueprint (data-on-eks ai-ml/nvidia-triton-server, its NIM path; ../shared/FACTS.md): what ran
# around the clock with one model replica serving. Its Karpenter GPU NodePool allowed the g5 family in sizes
# 2xlarge to 24xlarge; its NIM pods requested a GPU and nothing else, so one replica of an 8B model (one A10G) lands
# on the cheapest of them.
BLUEPRINT_NAME = "data-on-eks ai-ml/nvidia-triton-server, NIM path"
BLUEPRINT_CORE = ("m5.xlarge", 2, 100)  # type, nodes, gp3 root GiB each (core-node-group: desired 2)
BLUEPRINT_GPU_FAMILY = "g5"
BLUEPRINT_GPU_SIZES = ("2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")
BLUEPRINT_GPU_ROOT_GB = 100
BLUEPRINT_EFS_GIB = 100  # its one shared `nim` PVC, counted full as ours are
BLUEPRINT_LEFT_OUT = (
    "any control-plane logs; no Prometheus volume (kube-prometheus-stack 48.1.1's default has "
    "none); its monitoring and Open WebUI ran on the core nodes (no CPU pool). Its EKS 1.30 is priced at standard "
    "support, as ours is.")


def blueprint_cost(data: InstanceData, prices: dict[str, Any]) -> BlueprintCost:
    """The original blueprint, one replica serving, priced from the same data the same way as our estimate: spot
    basis = its GPU node at the spot estimate (the low end of the family's discount), on-demand basis = on demand;
    its core node group (managed) on demand on both."""
    gp3 = gp3_per_gb_hour(prices)
    month = prices["hours_per_month"]

    def same(item: str, value: float, detail: str) -> BlueprintItem:
        return BlueprintItem(item, BasisPrice(round(value, 4), round(value, 4)), detail)

    core_type, core_nodes, core_gb = BLUEPRINT_CORE
    core = data.types[core_type]
    gpu = min((t for t in data.in_families((BLUEPRINT_GPU_FAMILY,))
               if t.name.split(".", 1)[1] in BLUEPRINT_GPU_SIZES and t.gpus >= 1), key=lambda t: (t.on_demand, t.name))
    gpu_spot, (low, high) = spot_estimate(gpu, prices)
    items = (
        same(CONTROL_PLANE, prices["eks_control_plane_per_hour"], "standard support"),
        same("NAT gateway", prices["nat_gateway_per_hour"], "1 (single NAT)"),
        same("Core node group", core_nodes * core.on_demand,
             f"{core_nodes} x {core_type} on-demand (${core.on_demand}/h)"),
        same("Core node volumes", core_nodes * core_gb * gp3, f"{core_nodes} x {core_gb} GiB gp3"),
        same("EFS model cache", BLUEPRINT_EFS_GIB * prices["efs_standard_per_gb_month"] / month,
             f"{BLUEPRINT_EFS_GIB} GiB (its one PVC, full)"),
        BlueprintItem("GPU node (one 8B replica)", BasisPrice(gpu_spot, gpu.on_demand),
                      f"1 x {gpu.name}, the cheapest {BLUEPRINT_GPU_FAMILY} of its NodePool's sizes: spot est. "
                      f"({low}-{high}% off) / on-demand"),
        same("GPU node volume", BLUEPRINT_GPU_ROOT_GB * gp3, f"{BLUEPRINT_GPU_ROOT_GB} GiB gp3"),
        # its ingress-nginx behind an internal NLB, as our gateway behind ours: both priced the same way
        same(NLB, nlb_per_hour(prices), f"its ingress-nginx's internal NLB, {nlb_detail(prices)}"),
    )
    return BlueprintCost(BLUEPRINT_NAME, items,
                         BasisPrice(round(sum(i.per_hour.spot for i in items), 4),
                                    round(sum(i.per_hour.on_demand for i in items), 4)),
                         BLUEPRINT_LEFT_OUT)


NLB = "Network Load Balancer"


def nlb_per_hour(prices: dict[str, Any]) -> float:
    """One NLB: its hourly charge plus the assumed NLCU-hours (data/prices.yaml)."""
    return round(prices["nlb_per_hour"] + prices["nlb_nlcu_assumed"] * prices["nlb_nlcu_per_hour"], 4)


def nlb_detail(prices: dict[str, Any]) -> str:
    return (f"${prices['nlb_per_hour']}/h + {prices['nlb_nlcu_assumed']} NLCU ASSUMED x "
            f"${prices['nlb_nlcu_per_hour']}/NLCU-h")


def extended_support(version: str, today: date) -> bool:
    """True once `version` has left EKS standard support (after its last month in EKS_STANDARD_SUPPORT_ENDS)."""
    ends = versions.EKS_STANDARD_SUPPORT_ENDS.get(version)
    return ends is not None and today.strftime("%Y-%m") > ends


def cost_warnings(cost: CostEstimate, cfg: StackConfig) -> list[str]:
    """What `pulumi up` should say about the estimate: over budget, GPU or CPU limit too low, extended support."""
    found = []
    if not cost.gpu_limit.ok:
        found.append(cost.gpu_limit.message)
    if not cost.cpu_pool.within_limit:
        found.append(cost.cpu_pool.limit_message)
    if cost.over_budget:
        found.append(f"hourly_budget: {cost.budget.message}")
    if cost.eks_extended_support:
        found.append(f"eks_version {cfg.eks_version} is in EKS extended support: the control plane costs "
                     f"${cost.control_plane.per_hour:.2f}/h instead of $0.10/h; choose a newer version")
    return found


def fixed_costs(cfg: StackConfig, data: InstanceData, prices: dict[str, Any], extended: bool) -> list[FixedCost]:
    month = prices["hours_per_month"]
    gp3 = gp3_per_gb_hour(prices)
    if extended:
        control_plane = FixedCost(CONTROL_PLANE, prices["eks_extended_support_per_hour"],
                                  f"Kubernetes {cfg.eks_version}, EXTENDED support (standard support ended "
                                  f"{versions.EKS_STANDARD_SUPPORT_ENDS[cfg.eks_version]}): choose a newer version")
    else:
        control_plane = FixedCost(CONTROL_PLANE, prices["eks_control_plane_per_hour"],
                                  f"Kubernetes {cfg.eks_version}, standard support")
    items = [control_plane, control_plane_logs(cfg, prices)]
    nats = 1 if cfg.network.single_nat_gateway else cfg.network.availability_zones
    items.append(FixedCost("NAT gateways", round(nats * prices["nat_gateway_per_hour"], 4),
                           f"{nats} x ${prices['nat_gateway_per_hour']}/h, plus $0.045 per GB processed"))
    # the gateway's NLB (planning/endpoint.py), internal or internet-facing: the same price
    items.append(FixedCost(NLB, nlb_per_hour(prices), f"the gateway's, {nlb_detail(prices)}"))
    core = cfg.core
    node = data.types.get(core.instance_type)
    if node is not None:
        items.append(FixedCost("Core node group", round(core.node_count * node.on_demand, 4),
                               f"{core.node_count} x {core.instance_type} on-demand (${node.on_demand}/h)"))
    else:
        items.append(FixedCost("Core node group", None,
                               f"{core.node_count} x {core.instance_type}: not in the price table"))
    items.append(FixedCost("Core node volumes", round(core.node_count * core.disk_gb * gp3, 4),
                           f"{core.node_count} x {core.disk_gb} GiB gp3"))
    cache_gb = sum(cfg.catalog.models[m.name].cache_gib for m in cfg.models)
    items.append(FixedCost("EFS model cache", round(cache_gb * prices["efs_standard_per_gb_month"] / month, 4),
                           f"{cache_gb} GiB at most (caches filled) x ${prices['efs_standard_per_gb_month']}/GB-month"))
    if cfg.monitoring:
        items.append(FixedCost("Prometheus volume", round(cfg.prometheus.volume_gb * gp3, 4),
                               f"{cfg.prometheus.volume_gb} GiB gp3"))
    if cfg.open_webui:
        items.append(FixedCost("Open WebUI volume", round(OPEN_WEBUI_DATA_GB * gp3, 4),
                               f"{OPEN_WEBUI_DATA_GB} GiB gp3"))
    return items


def control_plane_logs(cfg: StackConfig, prices: dict[str, Any]) -> FixedCost:
    """CloudWatch ingestion and storage of the control-plane logs, at an ASSUMED daily volume per log type.

    Storage at steady state: the log group holds daily volume x retention days.
    """
    logs = cfg.logs
    if not logs.types:
        return FixedCost("Control-plane logs", 0.0, "off (cluster_log_types is []): no log group")
    per_day = sum(prices["eks_control_plane_log_gb_per_day"][t] for t in logs.types)
    kept = per_day * logs.retention_days
    ingest, store = prices["cloudwatch_logs_ingestion_per_gb"], prices["cloudwatch_logs_storage_per_gb_month"]
    per_hour = per_day * ingest / 24 + kept * store / prices["hours_per_month"]
    return FixedCost("Control-plane logs", round(per_hour, 4),
                     f"{', '.join(logs.types)}: ~{per_day:g} GB/day ASSUMED x ${ingest:.2f}/GB ingested + "
                     f"{kept:g} GB kept ({logs.retention_days} days) x ${store:.2f}/GB-month")


def gpu_node_volume(cfg: StackConfig, prices: dict[str, Any]) -> float:
    """Each GPU node's root volume, per hour."""
    return cfg.gpu.root_volume_gb * prices["ebs_gp3_per_gb_month"] / prices["hours_per_month"]


def cheaper_families(entry: CatalogModel, model: ModelRequest, data: InstanceData, current: float) -> list[str]:
    """GPU families outside the configured ones that would hold the model for less per replica (on-demand)."""
    found = []
    for family in GPU_FAMILIES:
        try:
            fit = fit_model(entry.min_gpus, entry.cpu, entry.memory_gib, model.gpus, (family,),
                            data.in_families(GPU_FAMILIES))
        except FitError:
            continue
        if data.types[fit.instance_types[0]].on_demand < current:
            found.append(family)
    return found


def ratio(ours: float, theirs: float) -> float:
    return round(ours / theirs, 2)


def estimate(cfg: StackConfig, data: InstanceData | None = None, prices: dict[str, Any] | None = None,
             today: date | None = None) -> CostEstimate:
    """The whole estimate (the plan prints it; the stack exports it)."""
    data = data or load_instances()
    prices = prices or load_prices()
    month = prices["hours_per_month"]
    extended = extended_support(cfg.eks_version, today or date.today())
    fixed = fixed_costs(cfg, data, prices, extended)
    fixed_total = sum(i.per_hour or 0 for i in fixed)
    pool = cpu_pool_cost(cfg, data, prices)
    node_volume = gpu_node_volume(cfg, prices)
    models = tuple(model_cost(m, cfg.catalog.models[m.name], data, prices, node_volume) for m in cfg.models)

    def total(basis: str, pool_per_hour: float) -> Scales:
        return Scales(*(fixed_total + pool_per_hour + sum(getattr(getattr(m.per_hour, basis), scale) for m in models)
                        for scale in ("idle", "min", "max")))

    spot, on_demand = total("spot", pool.spot.per_hour), total("on_demand", pool.on_demand.per_hour)
    blueprint = blueprint_cost(data, prices)

    def rounded(s: Scales, digits: int, by: float = 1) -> Scales:
        return Scales(round(s.idle * by, digits), round(s.min * by, digits), round(s.max * by, digits))

    def vs(s: Scales, theirs: float) -> Scales:
        return Scales(ratio(s.idle, theirs), ratio(s.min, theirs), ratio(s.max, theirs))

    gpus_at_max = sum(m.gpus_per_node * m.max_replicas for m in models)
    top = round(spot.max, 2)
    return CostEstimate(
        region=cfg.region,
        prices_region=data.region,
        prices_date=data.prices_date,
        note=(f"An estimate from {data.region} list prices of {data.prices_date} (your region: {cfg.region}); "
              "spot prices move daily. Excludes data transfer, NAT and EFS throughput charges (but for a model's wake, "
              "below it), burstable instances' "
              "surplus credits, and taxes."),
        eks_extended_support=extended,
        fixed=tuple(fixed),
        fixed_per_hour=round(fixed_total, 4),
        cpu_pool=pool,
        models=models,
        total_per_hour=Bases(rounded(spot, 2), rounded(on_demand, 2)),
        total_per_month=Bases(rounded(spot, 0, month), rounded(on_demand, 0, month)),
        blueprint=blueprint,
        vs_blueprint=Bases(vs(spot, blueprint.per_hour.spot), vs(on_demand, blueprint.per_hour.on_demand)),
        cold_start_sources=dict(coldstart.SOURCES),
        precache=precache_costs(cfg, data, prices),
        gpu_limit=GpuLimitCheck(cfg.gpu.limit, gpus_at_max, gpus_at_max <= cfg.gpu.limit),
        budget=budget_check(cfg, top, models, data),
    )


def budget_check(cfg: StackConfig, top: float, costs: tuple[ModelCost, ...], data: InstanceData) -> BudgetCheck | None:
    """`top`: the total per hour at max_replicas on the spot basis, as the estimate shows it."""
    if cfg.hourly_budget is None:
        return None
    if top <= cfg.hourly_budget:
        return BudgetCheck(cfg.hourly_budget, True, "")
    over = top - cfg.hourly_budget
    hints = []
    for c, m, entry in sorted(((c, m, cfg.catalog.models[m.name]) for c, m in zip(costs, cfg.models)),
                              key=lambda t: -t[0].instances_at_max):
        part = (f"{c.name} costs up to ${c.instances_at_max:.2f}/h ({c.max_replicas} x {c.instance_type} at "
                f"${c.per_replica:.2f}/h)")
        room = cfg.hourly_budget - (top - c.instances_at_max)
        fitting = int(room // c.per_replica) if c.per_replica > 0 else c.max_replicas
        if 0 < fitting < c.max_replicas:
            part += f"; max_replicas {max(fitting, c.min_replicas)} would fit"
        families = cheaper_families(entry, m, data, c.on_demand_per_hour)
        if families:
            part += f"; a cheaper family would hold it: {', '.join(families)}"
        hints.append(part)
    message = (f"the estimate at max_replicas (spot basis) is ${top:.2f}/h, ${over:.2f} over hourly_budget "
               f"${cfg.hourly_budget:.2f}: " + " | ".join(hints))
    return BudgetCheck(cfg.hourly_budget, False, message)
