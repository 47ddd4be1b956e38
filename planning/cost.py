"""What a stack costs: per model (cheapest fitting instance, on-demand and spot estimate) and fixed items.

Owns the estimate as a typed value (CostEstimate and its parts), how it is computed from the validated config and
the price data (data/instance_types.yaml, data/prices.yaml), the JSON the stack exports (`cost_estimate`,
`estimated_cost_per_hour`; the offline plan reads it back with `CostEstimate.from_json`), the plan's cost table
and the warnings `pulumi up` prints. An estimate, in the region the prices are for: no data transfer, NAT or EFS
throughput charges, no taxes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields, is_dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from planning import versions
from planning.catalog import CatalogModel
from planning.config import StackConfig
from planning.gpus import GPU_FAMILIES, FitError, fit_model
from planning.instances import InstanceData, load_instances
from planning.models import ModelRequest
from planning.workloads import OPEN_WEBUI_DATA_GB

PRICES = Path(__file__).resolve().parent.parent / "data" / "prices.yaml"


@functools.lru_cache(maxsize=None)
def load_prices(path: Path = PRICES) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


CONTROL_PLANE = "EKS control plane"  # the fixed item whose price depends on EKS support


def as_json(value: Any) -> Any:
    """A cost value as the stack exports it: dataclasses as objects (fields in order), tuples as lists."""
    if is_dataclass(value):
        return {f.name: as_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [as_json(v) for v in value]
    return value


@dataclass(frozen=True)
class MinMax:
    """A cost at min_replicas and at max_replicas."""

    min: float
    max: float


@dataclass(frozen=True)
class FixedCost:
    """A cost that does not scale with replicas."""

    item: str
    per_hour: float | None  # None: not in the price table
    detail: str


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
    priced_as: str  # spot when allowed (Karpenter prefers it), else on-demand
    min_replicas: int
    max_replicas: int
    per_hour: MinMax  # instances and their root volumes

    @property
    def per_replica(self) -> float:
        """The instance price the estimate charges for a replica."""
        return self.spot_estimate_per_hour if self.spot_estimate_per_hour is not None else self.on_demand_per_hour

    @property
    def instances_at_max(self) -> float:
        return self.per_replica * self.max_replicas

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCost:
        discount = data["spot_discount_percent"]
        return cls(**{**data, "capacity_types": tuple(data["capacity_types"]),
                      "spot_discount_percent": tuple(discount) if discount else None,
                      "per_hour": MinMax(**data["per_hour"])})


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
    """Whether the estimate at max_replicas stays within hourly_budget, and if not what would fit."""

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
    models: tuple[ModelCost, ...]
    total_per_hour: MinMax
    total_per_month: MinMax
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
        """The `estimated_cost_per_hour` output."""
        return {"min": self.total_per_hour.min, "max": self.total_per_hour.max, "prices_region": self.prices_region}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CostEstimate:
        """The estimate back from its `cost_estimate` output."""
        return cls(**{**data, "fixed": tuple(FixedCost(**i) for i in data["fixed"]),
                      "models": tuple(ModelCost.from_json(m) for m in data["models"]),
                      "total_per_hour": MinMax(**data["total_per_hour"]),
                      "total_per_month": MinMax(**data["total_per_month"]),
                      "gpu_limit": GpuLimitCheck(**data["gpu_limit"]),
                      "budget": BudgetCheck(**data["budget"]) if data["budget"] else None})

    def render(self) -> list[str]:
        """The plan's cost table."""
        lines = [self.note, ""]
        lines.append(f"{'item':<34} {'$/hour min':>11} {'$/hour max':>11}  detail")
        for item in self.fixed:
            value = "unknown" if item.per_hour is None else f"{item.per_hour:.3f}"
            lines.append(f"{item.item:<34} {value:>11} {value:>11}  {item.detail}")
        for m in self.models:
            price = f"{m.instance_type} on-demand ${m.on_demand_per_hour:.3f}/h"
            if m.spot_estimate_per_hour is not None:
                low, high = m.spot_discount_percent
                price += f", spot est. ${m.spot_estimate_per_hour:.3f}/h ({low}-{high}% off)"
            lines.append(f"{m.name:<34} {m.per_hour.min:>11.3f} {m.per_hour.max:>11.3f}  "
                         f"{m.min_replicas}-{m.max_replicas} x {price}")
        lines.append(f"{'TOTAL per hour':<34} {self.total_per_hour.min:>11.2f} {self.total_per_hour.max:>11.2f}")
        lines.append(f"{'TOTAL per month (730 h)':<34} {self.total_per_month.min:>11.0f} "
                     f"{self.total_per_month.max:>11.0f}")
        if not self.gpu_limit.ok:
            lines += ["", f"WARNING: {self.gpu_limit.message} (raise gpu_limit or lower max_replicas)"]
        if self.over_budget:
            lines += ["", f"OVER BUDGET: {self.budget.message}"]
        return lines


def model_cost(model: ModelRequest, data: InstanceData, prices: dict[str, Any], node_volume: float) -> ModelCost:
    """`node_volume`: each GPU node's root volume, per hour."""
    name = model.instance_types[0]  # fitting puts the cheapest first
    it = data.types[name]
    spot = None
    discount = None
    if "spot" in model.capacity_types:
        low, high = prices["spot_discount_percent"][it.family]
        discount = (low, high)
        spot = round(it.on_demand * (1 - low / 100), 4)
    per_replica = spot if spot is not None else it.on_demand
    return ModelCost(
        name=model.name, instance_type=name, gpus_per_replica=model.gpus, gpus_per_node=it.gpus,
        capacity_types=tuple(model.capacity_types), on_demand_per_hour=it.on_demand, spot_estimate_per_hour=spot,
        spot_discount_percent=discount, priced_as="spot" if spot is not None else "on-demand",
        min_replicas=model.min_replicas, max_replicas=model.max_replicas,
        per_hour=MinMax(round(per_replica * model.min_replicas + model.min_replicas * node_volume, 4),
                        round(per_replica * model.max_replicas + model.max_replicas * node_volume, 4)))


def extended_support(version: str, today: date) -> bool:
    """True once `version` has left EKS standard support (after its last month in EKS_STANDARD_SUPPORT_ENDS)."""
    ends = versions.EKS_STANDARD_SUPPORT_ENDS.get(version)
    return ends is not None and today.strftime("%Y-%m") > ends


def cost_warnings(cost: CostEstimate, cfg: StackConfig) -> list[str]:
    """What `pulumi up` should say about the estimate: over budget, GPU limit too low, extended support."""
    found = []
    if not cost.gpu_limit.ok:
        found.append(cost.gpu_limit.message)
    if cost.over_budget:
        found.append(f"hourly_budget: {cost.budget.message}")
    if cost.eks_extended_support:
        found.append(f"eks_version {cfg.eks_version} is in EKS extended support: the control plane costs "
                     f"${cost.control_plane.per_hour:.2f}/h instead of $0.10/h; choose a newer version")
    return found


def fixed_costs(cfg: StackConfig, data: InstanceData, prices: dict[str, Any], extended: bool) -> list[FixedCost]:
    month = prices["hours_per_month"]
    gp3 = prices["ebs_gp3_per_gb_month"] / month
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


def estimate(cfg: StackConfig, data: InstanceData | None = None, prices: dict[str, Any] | None = None,
             today: date | None = None) -> CostEstimate:
    """The whole estimate (the plan prints it; the stack exports it)."""
    data = data or load_instances()
    prices = prices or load_prices()
    month = prices["hours_per_month"]
    extended = extended_support(cfg.eks_version, today or date.today())
    fixed = fixed_costs(cfg, data, prices, extended)
    fixed_total = sum(i.per_hour or 0 for i in fixed)
    node_volume = gpu_node_volume(cfg, prices)
    models = tuple(model_cost(m, data, prices, node_volume) for m in cfg.models)
    total_min = fixed_total + sum(m.per_hour.min for m in models)
    total_max = fixed_total + sum(m.per_hour.max for m in models)
    gpus_at_max = sum(m.gpus_per_node * m.max_replicas for m in models)
    top = round(total_max, 2)
    return CostEstimate(
        region=cfg.region,
        prices_region=data.region,
        prices_date=data.prices_date,
        note=(f"An estimate from {data.region} list prices of {data.prices_date} (your region: {cfg.region}); "
              "spot prices move daily. Excludes data transfer, NAT and EFS throughput charges, and taxes."),
        eks_extended_support=extended,
        fixed=tuple(fixed),
        fixed_per_hour=round(fixed_total, 4),
        models=models,
        total_per_hour=MinMax(round(total_min, 2), top),
        total_per_month=MinMax(round(total_min * month, 0), round(total_max * month, 0)),
        gpu_limit=GpuLimitCheck(cfg.gpu.limit, gpus_at_max, gpus_at_max <= cfg.gpu.limit),
        budget=budget_check(cfg, top, models, data),
    )


def budget_check(cfg: StackConfig, top: float, costs: tuple[ModelCost, ...], data: InstanceData) -> BudgetCheck | None:
    """`top`: the total per hour at max_replicas, as the estimate shows it."""
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
    message = (f"the estimate at max_replicas is ${top:.2f}/h, ${over:.2f} over hourly_budget "
               f"${cfg.hourly_budget:.2f}: " + " | ".join(hints))
    return BudgetCheck(cfg.hourly_budget, False, message)
