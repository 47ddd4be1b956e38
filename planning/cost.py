"""What a stack costs: per model (cheapest fitting instance, on-demand and spot estimate) and fixed items.

Pure functions on the validated config and the price data (data/instance_types.yaml, data/prices.yaml). An
estimate, in the region the prices are for: no data transfer, NAT or EFS throughput charges, no taxes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
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
from components.webui import DATA_VOLUME_GB

PRICES = Path(__file__).resolve().parent.parent / "data" / "prices.yaml"
OPEN_WEBUI_VOLUME_GB = DATA_VOLUME_GB  # the component's own figure


@functools.lru_cache(maxsize=None)
def load_prices(path: Path = PRICES) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


@dataclass(frozen=True)
class ModelCost:
    name: str
    instance_type: str
    gpus_per_node: int
    on_demand: float  # $/hour per replica (one node each)
    spot_estimate: float | None  # None when the model may not run on spot
    spot_discount: tuple[int, int] | None
    per_replica: float  # what the estimate charges: spot when allowed (Karpenter prefers it), else on-demand
    min_replicas: int
    max_replicas: int

    @property
    def at_min(self) -> float:
        return self.per_replica * self.min_replicas

    @property
    def at_max(self) -> float:
        return self.per_replica * self.max_replicas


def model_cost(model: ModelRequest, data: InstanceData, prices: dict[str, Any]) -> ModelCost:
    name = model.instance_types[0]  # fitting puts the cheapest first
    it = data.types[name]
    spot = None
    discount = None
    if "spot" in model.capacity_types:
        low, high = prices["spot_discount_percent"][it.family]
        discount = (low, high)
        spot = round(it.on_demand * (1 - low / 100), 4)
    return ModelCost(name=model.name, instance_type=name, gpus_per_node=it.gpus, on_demand=it.on_demand,
                     spot_estimate=spot, spot_discount=discount,
                     per_replica=spot if spot is not None else it.on_demand,
                     min_replicas=model.min_replicas, max_replicas=model.max_replicas)


def extended_support(version: str, today: date) -> bool:
    """True once `version` has left EKS standard support (after its last month in EKS_STANDARD_SUPPORT_ENDS)."""
    ends = versions.EKS_STANDARD_SUPPORT_ENDS.get(version)
    return ends is not None and today.strftime("%Y-%m") > ends


def cost_warnings(cost: dict[str, Any], cfg: StackConfig) -> list[str]:
    """What `pulumi up` should say about the estimate: over budget, GPU limit too low, extended support."""
    found = []
    if not cost["gpu_limit"]["ok"]:
        found.append(gpu_limit_message(cost["gpu_limit"]))
    if cost["budget"] and not cost["budget"]["ok"]:
        found.append(f"hourly_budget: {cost['budget']['message']}")
    plane = cost["fixed"][0]
    if cost["eks_extended_support"]:
        found.append(f"eks_version {cfg.eks_version} is in EKS extended support: the control plane costs "
                     f"${plane['per_hour']:.2f}/h instead of $0.10/h; choose a newer version")
    return found


def gpu_limit_message(limit: dict[str, Any]) -> str:
    return (f"gpu_limit {limit['limit']} cannot hold every model at max_replicas: that needs "
            f"{limit['gpus_at_max_replicas']} GPUs")


def fixed_costs(cfg: StackConfig, data: InstanceData, prices: dict[str, Any], extended: bool) -> list[dict[str, Any]]:
    month = prices["hours_per_month"]
    gp3 = prices["ebs_gp3_per_gb_month"] / month
    if extended:
        control_plane = {"item": "EKS control plane", "per_hour": prices["eks_extended_support_per_hour"],
                         "detail": f"Kubernetes {cfg.eks_version}, EXTENDED support (standard support ended "
                                   f"{versions.EKS_STANDARD_SUPPORT_ENDS[cfg.eks_version]}): choose a newer version"}
    else:
        control_plane = {"item": "EKS control plane", "per_hour": prices["eks_control_plane_per_hour"],
                         "detail": f"Kubernetes {cfg.eks_version}, standard support"}
    items = [control_plane, control_plane_logs(cfg, prices)]
    nats = 1 if cfg.network.single_nat_gateway else cfg.network.availability_zones
    items.append({"item": "NAT gateways", "per_hour": round(nats * prices["nat_gateway_per_hour"], 4),
                  "detail": f"{nats} x ${prices['nat_gateway_per_hour']}/h, plus $0.045 per GB processed"})
    core = data.types.get(cfg.core.instance_type)
    if core is not None:
        items.append({"item": "Core node group", "per_hour": round(cfg.core.node_count * core.on_demand, 4),
                      "detail": f"{cfg.core.node_count} x {cfg.core.instance_type} on-demand (${core.on_demand}/h)"})
    else:
        items.append({"item": "Core node group", "per_hour": None,
                      "detail": f"{cfg.core.node_count} x {cfg.core.instance_type}: not in the price table"})
    items.append({"item": "Core node volumes", "per_hour": round(cfg.core.node_count * cfg.core.disk_gb * gp3, 4),
                  "detail": f"{cfg.core.node_count} x {cfg.core.disk_gb} GiB gp3"})
    cache_gb = sum(cfg.catalog.models[m.name].cache_gib for m in cfg.models)
    items.append({"item": "EFS model cache", "per_hour": round(cache_gb * prices["efs_standard_per_gb_month"] / month, 4),
                  "detail": f"{cache_gb} GiB at most (caches filled) x ${prices['efs_standard_per_gb_month']}/GB-month"})
    if cfg.monitoring:
        items.append({"item": "Prometheus volume", "per_hour": round(cfg.prometheus.volume_gb * gp3, 4),
                      "detail": f"{cfg.prometheus.volume_gb} GiB gp3"})
    if cfg.open_webui:
        items.append({"item": "Open WebUI volume", "per_hour": round(OPEN_WEBUI_VOLUME_GB * gp3, 4),
                      "detail": f"{OPEN_WEBUI_VOLUME_GB} GiB gp3"})
    return items


def control_plane_logs(cfg: StackConfig, prices: dict[str, Any]) -> dict[str, Any]:
    """CloudWatch ingestion and storage of the control-plane logs, at an ASSUMED daily volume per log type.

    Storage at steady state: the log group holds daily volume x retention days.
    """
    if not cfg.logs.types:
        return {"item": "Control-plane logs", "per_hour": 0.0, "detail": "off (cluster_log_types is []): no log group"}
    per_day = sum(prices["eks_control_plane_log_gb_per_day"][t] for t in cfg.logs.types)
    kept = per_day * cfg.logs.retention_days
    ingest, store = prices["cloudwatch_logs_ingestion_per_gb"], prices["cloudwatch_logs_storage_per_gb_month"]
    per_hour = per_day * ingest / 24 + kept * store / prices["hours_per_month"]
    return {"item": "Control-plane logs", "per_hour": round(per_hour, 4),
            "detail": f"{', '.join(cfg.logs.types)}: ~{per_day:g} GB/day ASSUMED x ${ingest:.2f}/GB ingested + "
                      f"{kept:g} GB kept ({cfg.logs.retention_days} days) x ${store:.2f}/GB-month"}


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
             today: date | None = None) -> dict[str, Any]:
    """The whole estimate as plain data (the plan prints it; the stack exports it)."""
    data = data or load_instances()
    prices = prices or load_prices()
    month = prices["hours_per_month"]
    extended = extended_support(cfg.eks_version, today or date.today())
    fixed = fixed_costs(cfg, data, prices, extended)
    fixed_total = sum(i["per_hour"] or 0 for i in fixed)
    node_volume = gpu_node_volume(cfg, prices)
    models = []
    costs = []
    for m in cfg.models:
        c = model_cost(m, data, prices)
        costs.append(c)
        models.append({
            "name": c.name, "instance_type": c.instance_type, "gpus_per_replica": m.gpus,
            "gpus_per_node": c.gpus_per_node, "capacity_types": list(m.capacity_types),
            "on_demand_per_hour": c.on_demand, "spot_estimate_per_hour": c.spot_estimate,
            "spot_discount_percent": list(c.spot_discount) if c.spot_discount else None,
            "priced_as": "spot" if c.spot_estimate is not None else "on-demand",
            "min_replicas": c.min_replicas, "max_replicas": c.max_replicas,
            "per_hour": {"min": round(c.at_min + c.min_replicas * node_volume, 4),
                         "max": round(c.at_max + c.max_replicas * node_volume, 4)},
        })
    total_min = fixed_total + sum(m["per_hour"]["min"] for m in models)
    total_max = fixed_total + sum(m["per_hour"]["max"] for m in models)
    gpus_at_max = sum(c.gpus_per_node * c.max_replicas for c in costs)
    result: dict[str, Any] = {
        "region": cfg.region,
        "prices_region": data.region,
        "prices_date": data.prices_date,
        "note": (f"An estimate from {data.region} list prices of {data.prices_date} (your region: {cfg.region}); "
                 "spot prices move daily. Excludes data transfer, NAT and EFS throughput charges, and taxes."),
        "eks_extended_support": extended,
        "fixed": fixed,
        "fixed_per_hour": round(fixed_total, 4),
        "models": models,
        "total_per_hour": {"min": round(total_min, 2), "max": round(total_max, 2)},
        "total_per_month": {"min": round(total_min * month, 0), "max": round(total_max * month, 0)},
        "gpu_limit": {"limit": cfg.gpu.limit, "gpus_at_max_replicas": gpus_at_max,
                      "ok": gpus_at_max <= cfg.gpu.limit},
    }
    result["budget"] = budget_check(cfg, result, costs, data)
    return result


def budget_check(cfg: StackConfig, result: dict[str, Any], costs: list[ModelCost],
                 data: InstanceData) -> dict[str, Any] | None:
    if cfg.hourly_budget is None:
        return None
    top = result["total_per_hour"]["max"]
    if top <= cfg.hourly_budget:
        return {"hourly_budget": cfg.hourly_budget, "ok": True, "message": ""}
    over = top - cfg.hourly_budget
    hints = []
    for c, m, entry in sorted(((c, m, cfg.catalog.models[m.name]) for c, m in zip(costs, cfg.models)),
                              key=lambda t: -t[0].at_max):
        part = f"{c.name} costs up to ${c.at_max:.2f}/h ({c.max_replicas} x {c.instance_type} at ${c.per_replica:.2f}/h)"
        room = cfg.hourly_budget - (top - c.at_max)
        fitting = int(room // c.per_replica) if c.per_replica > 0 else c.max_replicas
        if 0 < fitting < c.max_replicas:
            part += f"; max_replicas {max(fitting, c.min_replicas)} would fit"
        families = cheaper_families(entry, m, data, c.on_demand)
        if families:
            part += f"; a cheaper family would hold it: {', '.join(families)}"
        hints.append(part)
    message = (f"the estimate at max_replicas is ${top:.2f}/h, ${over:.2f} over hourly_budget "
               f"${cfg.hourly_budget:.2f}: " + " | ".join(hints))
    return {"hourly_budget": cfg.hourly_budget, "ok": False, "message": message}


def render(cost: dict[str, Any]) -> list[str]:
    """The plan's cost table."""
    lines = [cost["note"], ""]
    lines.append(f"{'item':<34} {'$/hour min':>11} {'$/hour max':>11}  detail")
    for item in cost["fixed"]:
        value = "unknown" if item["per_hour"] is None else f"{item['per_hour']:.3f}"
        lines.append(f"{item['item']:<34} {value:>11} {value:>11}  {item['detail']}")
    for m in cost["models"]:
        if m["spot_estimate_per_hour"] is not None:
            price = (f"{m['instance_type']} on-demand ${m['on_demand_per_hour']:.3f}/h, spot est. "
                     f"${m['spot_estimate_per_hour']:.3f}/h ({m['spot_discount_percent'][0]}-"
                     f"{m['spot_discount_percent'][1]}% off)")
        else:
            price = f"{m['instance_type']} on-demand ${m['on_demand_per_hour']:.3f}/h"
        lines.append(f"{m['name']:<34} {m['per_hour']['min']:>11.3f} {m['per_hour']['max']:>11.3f}  "
                     f"{m['min_replicas']}-{m['max_replicas']} x {price}")
    lines.append(f"{'TOTAL per hour':<34} {cost['total_per_hour']['min']:>11.2f} {cost['total_per_hour']['max']:>11.2f}")
    lines.append(f"{'TOTAL per month (730 h)':<34} {cost['total_per_month']['min']:>11.0f} "
                 f"{cost['total_per_month']['max']:>11.0f}")
    limit = cost["gpu_limit"]
    if not limit["ok"]:
        lines += ["", f"WARNING: {gpu_limit_message(limit)} (raise gpu_limit or lower max_replicas)"]
    budget = cost.get("budget")
    if budget and not budget["ok"]:
        lines += ["", f"OVER BUDGET: {budget['message']}"]
    return lines
