"""Cost estimate: cheapest fitting instance per model, fixed items, totals, budget and GPU limit checks."""

from __future__ import annotations

import math

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from planning import coldstart
from planning.cost import CostEstimate, GpuLimitCheck, Replicas, Scales, as_json, blueprint_cost, estimate, \
    load_prices
from planning.gpus import DAEMONSET_CPU_M, DAEMONSET_MEMORY_MIB, FitError, fit_model, fits
from planning.instances import InstanceType, load_instances
from planning.pools import CpuPoolFitError, PodLoad, size_cpu_pool
from planning.workloads import CPU_POOL, PoolWorkload
from tests.conftest import parse, plan_for, problems
from tools import plan as plan_cli

DATA = load_instances()


def cost_for(**overrides):
    return estimate(parse(**overrides))


@pytest.mark.parametrize(
    "models, families, expected",
    [
        ('["meta/llama3-8b-instruct"]', '["g5"]', "g5.2xlarge"),  # 1 GPU, and 26 GiB host memory: not g5.xlarge
        ('["meta/llama3-8b-instruct"]', '["g5","g6","g6e"]', "g6.2xlarge"),
        ('[{"name": "meta/llama-3.1-70b-instruct", "gpus": 4}]', '["p4de","p5"]', "p4de.24xlarge"),
        ('[{"name": "meta/llama-3.1-70b-instruct", "gpus": 4}]', '["g6e","p4de","p5"]', "g6e.12xlarge"),
        ('["meta/llama-3.2-1b-instruct"]', '["g4dn","g5"]', "g4dn.xlarge"),
        ('["meta/llama-3.1-8b-instruct"]', '["g5","g6"]', "g6.12xlarge"),  # needs 2 x L4 (or 4 x A10G)
        # 2 x H100 on p5.48xlarge costs less than 1 x H200 on p5en.48xlarge: the default GPU count follows cost
        ('["mistralai/mixtral-8x7b-instruct-v01"]', '["p5","p5en"]', "p5.48xlarge"),
    ],
)
def test_cheapest_fitting_instance(models, families, expected):
    [m] = cost_for(nim_models=models, gpu_instance_families=families).models
    assert m.instance_type == expected
    chosen = DATA.types[expected]
    assert m.on_demand_per_hour == chosen.on_demand
    # nothing cheaper in the allowed families fits
    fits = parse(nim_models=models, gpu_instance_families=families).models[0].instance_types
    assert all(DATA.types[n].on_demand >= chosen.on_demand for n in fits)


def test_known_prices_and_spot_estimate():
    [m] = cost_for(gpu_instance_families='["g5"]').models
    assert m.on_demand_per_hour == 1.212  # g5.2xlarge, us-east-1
    low, high = load_prices()["spot_discount_percent"]["g5"]
    assert m.spot_discount_percent == (low, high)
    assert m.spot_estimate_per_hour == pytest.approx(1.212 * (1 - low / 100), abs=1e-4)
    assert m.priced_as == "spot"
    [od] = cost_for(nim_models='[{"name": "meta/llama3-8b-instruct", "capacity_types": ["on-demand"]}]').models
    assert od.spot_estimate_per_hour is None and od.priced_as == "on-demand"


def test_totals_add_up():
    cost = cost_for(nim_models='["meta/llama3-8b-instruct", {"name": "meta/llama-3.2-1b-instruct", "min_replicas": 2, '
                               '"max_replicas": 3}]', single_nat_gateway="false")
    fixed = sum(i.per_hour for i in cost.fixed)
    assert cost.fixed_per_hour == pytest.approx(fixed, abs=1e-3)
    for basis in ("spot", "on_demand"):
        pool = getattr(cost.cpu_pool, basis).per_hour
        for scale in ("idle", "min", "max"):
            models = sum(getattr(getattr(m.per_hour, basis), scale) for m in cost.models)
            assert getattr(getattr(cost.total_per_hour, basis), scale) == pytest.approx(fixed + pool + models, abs=0.01)
            assert getattr(getattr(cost.total_per_month, basis), scale) == pytest.approx(
                (fixed + pool + models) * 730, abs=1)
    items = {i.item: i for i in cost.fixed}
    assert items["EKS control plane"].per_hour == 0.10
    assert items["NAT gateways"].per_hour == pytest.approx(3 * 0.045)
    assert items["Core node group"].per_hour == pytest.approx(2 * DATA.types["t4g.medium"].on_demand)
    small = cost.models[1]
    volume = 40 * 0.08 / 730  # the default GPU root volume (OS only; images on local NVMe)
    assert small.instance_type == "g6.2xlarge"  # its catalog CPU and memory need the 2xlarge
    spot = DATA.types["g6.2xlarge"].on_demand * (1 - load_prices()["spot_discount_percent"]["g6"][0] / 100)
    # min_replicas 2: idle and min are both 2 replicas; max 3
    assert small.per_hour.spot == Scales(*(pytest.approx(n * (spot + volume), abs=1e-3) for n in (2, 2, 3)))
    od = DATA.types["g6.2xlarge"].on_demand
    assert small.per_hour.on_demand == Scales(*(pytest.approx(n * (od + volume), abs=1e-3) for n in (2, 2, 3)))
    # the 8B model at its default min_replicas 1: one replica at idle and min, five at max
    assert cost.models[0].replicas == Replicas(1, 1, 5)


def test_fixed_items_follow_the_config():
    prices = load_prices()
    gp3_hour = prices["ebs_gp3_per_gb_month"] / prices["hours_per_month"]
    cost = cost_for(core_node_count="3", core_disk_gb="200", core_node_max="5", prometheus_volume_gb="80")
    items = {i.item: i.per_hour for i in cost.fixed}
    assert items["Core node group"] == pytest.approx(3 * DATA.types["t4g.medium"].on_demand)
    assert items["Core node volumes"] == pytest.approx(3 * 200 * gp3_hour, abs=1e-4)  # every node has its own
    assert items["Prometheus volume"] == pytest.approx(80 * gp3_hour, abs=1e-4)
    cache = parse().catalog.models["meta/llama3-8b-instruct"].cache_gib
    assert items["EFS model cache"] == pytest.approx(
        cache * prices["efs_standard_per_gb_month"] / prices["hours_per_month"], abs=1e-4)
    assert items["NAT gateways"] == pytest.approx(prices["nat_gateway_per_hour"])  # one, by default


def test_gpu_limit_counts_the_gpus_of_whole_nodes():
    """A NodePool's limits bound what its nodes bring, not what pods request (aws/karpenter-provider-aws @ 1d927085,
    website/content/en/v1.14/concepts/nodepools.md, spec.limits): Llama 3.1 8B on 2 x L4 gets a g6.12xlarge with 4."""
    models = '[{"name": "meta/llama-3.1-8b-instruct", "max_replicas": 2}]'
    cost = cost_for(nim_models=models, gpu_instance_families='["g5","g6"]', gpu_limit="7")
    [m] = cost.models
    assert (m.gpus_per_replica, m.instance_type, m.gpus_per_node) == (2, "g6.12xlarge", 4)
    assert cost.gpu_limit == GpuLimitCheck(limit=7, gpus_at_max_replicas=8, ok=False)
    assert cost_for(nim_models=models, gpu_instance_families='["g5","g6"]', gpu_limit="8").gpu_limit.ok is True


def test_budget_boundary():
    """hourly_budget is checked against max on the spot basis."""
    top = cost_for().total_per_hour.spot.max
    assert cost_for(hourly_budget=str(top)).budget.ok is True  # exactly the budget is within it
    below = cost_for(hourly_budget=f"{top - 0.01:.2f}").budget
    assert below.ok is False and "$0.01 over hourly_budget" in below.message


def instance(name, family, gpu_type, gpus, alloc_cpu_m, alloc_memory_mib, price):
    return InstanceType(name=name, family=family, gpu_type=gpu_type, gpus=gpus, vcpu=alloc_cpu_m // 1000 + 1,
                        memory_mib=alloc_memory_mib + 2048, alloc_cpu_m=alloc_cpu_m,
                        alloc_memory_mib=alloc_memory_mib, on_demand=price, arch="amd64", alloc_pods=58)


def test_a_replica_fits_when_its_requests_and_the_daemonsets_fit_exactly():
    """What the node's DaemonSets take plus the model's requests must fit in what is allocatable; exactly enough is
    enough, one millicore or one MiB less is not."""
    cpu, memory_gib = 4, 26
    need_cpu_m, need_mib = cpu * 1000 + DAEMONSET_CPU_M, memory_gib * 1024 + DAEMONSET_MEMORY_MIB
    assert DAEMONSET_CPU_M > 0 and DAEMONSET_MEMORY_MIB > 0
    exact = instance("g6.exact", "g6", "l4", 1, need_cpu_m, need_mib, 1.0)
    assert fits(exact, "l4", 1, cpu, memory_gib)
    assert not fits(instance("g6.cpu", "g6", "l4", 1, need_cpu_m - 1, need_mib, 1.0), "l4", 1, cpu, memory_gib)
    assert not fits(instance("g6.mem", "g6", "l4", 1, need_cpu_m, need_mib - 1, 1.0), "l4", 1, cpu, memory_gib)
    assert not fits(exact, "a10g", 1, cpu, memory_gib)  # another GPU type
    assert not fits(exact, "l4", 2, cpu, memory_gib)  # too few GPUs
    assert fits(instance("g6.four", "g6", "l4", 4, need_cpu_m, need_mib, 2.0), "l4", 2, cpu, memory_gib)  # more is fine


def test_on_a_price_tie_the_fewer_gpus_win():
    one = instance("g6.one", "g6", "l4", 1, 16000, 64000, 1.0)
    two = instance("g5.two", "g5", "a10g", 2, 16000, 64000, 1.0)
    fit = fit_model({"l4": 1, "a10g": 2}, 4, 26, None, ("g5", "g6"), [one, two])
    assert (fit.gpus, fit.gpu_types, fit.instance_types) == (1, ("l4",), ("g6.one",))
    cheaper_two = instance("g5.two", "g5", "a10g", 2, 16000, 64000, 0.9)
    assert fit_model({"l4": 1, "a10g": 2}, 4, 26, None, ("g5", "g6"), [one, cheaper_two]).gpus == 2


def test_asking_for_as_many_gpus_as_the_biggest_node_has():
    nodes = load_instances().in_families(("p5",))
    assert max(i.gpus for i in nodes) == 8
    assert fit_model({"h100": 4}, 16, 150, 8, ("p5",), nodes).gpus == 8
    with pytest.raises(FitError, match="asks for 9 GPUs per replica, more than any instance"):
        fit_model({"h100": 4}, 16, 150, 9, ("p5",), nodes)


def test_monitoring_and_webui_volumes_only_when_on():
    items = {i.item for i in cost_for(monitoring="false", open_webui="false").fixed}
    assert "Prometheus volume" not in items and "Open WebUI volume" not in items


def test_a_core_type_outside_the_price_table_is_refused_before_the_estimate():
    """Its architecture (the AMI), allocatable resources (the core's pods) and price all come from the data."""
    [problem] = problems(core_instance_type="z9.mega")
    assert problem.startswith("core_instance_type: 'z9.mega' is not valid; allowed: an instance type without GPUs "
                              "that data/instance_types.yaml describes")


def test_budget_check_fires_and_says_what_would_fit(capsys):
    code = plan_cli.main(["--set", "hourly_budget=2"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "OVER BUDGET: the estimate at max_replicas (spot basis) is $2.95/h, $0.95 over hourly_budget $2.00" in out
    assert "meta/llama3-8b-instruct costs up to $2.59/h (5 x g6.2xlarge at $0.52/h); max_replicas 3 would fit" in out
    assert "exceeds hourly_budget" in err
    plan = plan_for("hourly_budget=2")
    assert any(w.startswith("hourly_budget: the estimate at max_replicas") for w in plan.warnings)
    assert plan_cli.main(["--set", "hourly_budget=5"]) == 0
    capsys.readouterr()


def test_budget_suggests_a_cheaper_family():
    cost = cost_for(nim_models='[{"name": "meta/llama3-8b-instruct", "max_replicas": 2}]',
                    gpu_instance_families='["p5"]', hourly_budget="5")
    assert not cost.budget.ok
    assert "a cheaper family would hold it: g4dn" not in cost.budget.message  # 8B fp16 does not fit a T4
    assert "a cheaper family would hold it: g5, g6, g6e" in cost.budget.message
    assert "p4d" not in cost.budget.message  # fits, but p4d.24xlarge costs more than p5.4xlarge


def test_gpu_limit_that_cannot_hold_max_replicas_is_reported(capsys):
    plan = plan_for("gpu_limit=3")
    assert any("gpu_limit 3 cannot hold every model at max_replicas: that needs 5 GPUs" in w for w in plan.warnings)
    assert plan_cli.main(["--set", "gpu_limit=3"]) == 0  # a warning, not a failure
    out, _ = capsys.readouterr()
    assert "WARNING: gpu_limit 3 cannot hold every model at max_replicas: that needs 5 GPUs" in out


def test_plan_prints_and_writes_the_cost(tmp_path, capsys):
    target = tmp_path / "plan.json"
    assert plan_cli.main(["--json", str(target)]) == 0
    out, _ = capsys.readouterr()
    assert "Estimated cost:" in out and "TOTAL per hour, spot basis" in out and "TOTAL per month (730 h)" in out
    assert "TOTAL per hour, on-demand basis" in out and "x the original blueprint" in out
    assert "us-east-1 list prices" in out and "your region: us-west-2" in out
    doc = json.loads(target.read_text())
    cost = doc["cost"]
    assert set(cost["total_per_hour"]) == {"spot", "on_demand"}
    for basis in cost["total_per_hour"].values():
        assert basis["idle"] < basis["min"] < basis["max"]
    [m] = cost["models"]
    assert m["instance_type"] == "g6.2xlarge" and m["on_demand_per_hour"] and m["spot_estimate_per_hour"]
    assert {i["item"] for i in cost["fixed"]} >= {"EKS control plane", "NAT gateways", "Core node group",
                                                   "EFS model cache", "Prometheus volume"}


def test_stack_output(dev_plan):
    """The outputs are the estimate of the stack's own config (Pulumi.dev.yaml: one 8B model that scales to zero,
    defaults otherwise)."""
    expected = cost_for(nim_models='[{"name": "meta/llama3-8b-instruct", "min_replicas": 0}]')
    spot, od = expected.total_per_hour.spot, expected.total_per_hour.on_demand
    assert dev_plan.outputs["estimated_cost_per_hour"] == {
        "idle": spot.idle, "min": spot.min, "max": spot.max,
        "on_demand": {"idle": od.idle, "min": od.min, "max": od.max}, "prices_region": "us-east-1"}
    exported = CostEstimate.from_json(dev_plan.outputs["cost_estimate"])
    assert exported.total_per_hour == expected.total_per_hour
    assert exported.models == expected.models


@pytest.mark.parametrize("overrides", [
    {}, {"hourly_budget": "2", "gpu_limit": "3"}, {"hourly_budget": "100"},
    {"aiperf": "true", "cpu_capacity_types": '["on-demand"]', "cpu_limit": "1"},
    {"cpu_instance_families": '["m7g"]',
     "nim_models": '[{"name": "meta/llama3-8b-instruct", "min_replicas": 0, "precache": false}]'},
    {"eks_version": "1.33", "core_instance_type": "t3.medium", "monitoring": "false",
     "nim_models": '[{"name": "meta/llama3-8b-instruct", "capacity_types": ["on-demand"]}]'},
])
def test_the_exported_json_reads_back_as_the_estimate(overrides):
    """The plan renders the stack's `cost_estimate` output: read back, it is the estimate the stack computed."""
    cost = cost_for(**overrides)
    exported = json.loads(json.dumps(cost.as_json()))  # as the engine stores it
    assert CostEstimate.from_json(exported) == cost
    assert CostEstimate.from_json(exported).render() == cost.render()


def test_the_exported_json_keeps_its_shape():
    """The shape of `cost_estimate` and `estimated_cost_per_hour` (changed on purpose in issue 13: idle, min and max
    on two bases, the CPU pool, the blueprint, cold starts): same keys, same order, same types from now on."""
    doc = cost_for(hourly_budget="2").as_json()
    assert list(doc) == ["region", "prices_region", "prices_date", "note", "eks_extended_support", "fixed",
                         "fixed_per_hour", "cpu_pool", "models", "total_per_hour", "total_per_month", "blueprint",
                         "vs_blueprint", "cold_start_sources", "precache", "gpu_limit", "budget"]
    assert list(doc["fixed"][0]) == ["item", "per_hour", "detail"]
    assert list(doc["models"][0]) == [
        "name", "instance_type", "gpus_per_replica", "gpus_per_node", "capacity_types", "on_demand_per_hour",
        "spot_estimate_per_hour", "spot_discount_percent", "priced_as", "min_replicas", "max_replicas", "replicas",
        "per_hour", "cold_start"]
    assert isinstance(doc["models"][0]["capacity_types"], list)
    assert isinstance(doc["models"][0]["spot_discount_percent"], list)
    for bases in (doc["models"][0]["per_hour"], doc["total_per_hour"], doc["total_per_month"], doc["vs_blueprint"]):
        assert list(bases) == ["spot", "on_demand"]
        assert list(bases["spot"]) == list(bases["on_demand"]) == ["idle", "min", "max"]
    assert list(doc["models"][0]["replicas"]) == ["idle", "min", "max"]
    assert list(doc["models"][0]["cold_start"]) == ["gpu_node_s", "image_pull_s", "model_load_s", "total_s", "minutes",
                                                    "wake_cost", "break_even_minutes"]
    assert list(doc["cpu_pool"]) == ["families", "capacity_types", "workloads", "requests", "daemonsets_per_node",
                                     "root_volume_gb", "limit_vcpu", "spot", "on_demand"]
    assert list(doc["cpu_pool"]["spot"]) == ["nodes", "vcpus", "per_hour"]
    assert list(doc["cpu_pool"]["spot"]["nodes"][0]) == [
        "instance_type", "arch", "count", "capacity_type", "per_node_hour", "spot_discount_percent", "pods"]
    assert list(doc["blueprint"]) == ["name", "items", "per_hour", "left_out"]
    assert list(doc["blueprint"]["per_hour"]) == ["spot", "on_demand"]
    assert list(doc["precache"][0]) == ["model", "cache_gib", "download_minutes", "instance_type", "per_run"]
    assert list(doc["gpu_limit"]) == ["limit", "gpus_at_max_replicas", "ok"]
    assert list(doc["budget"]) == ["hourly_budget", "ok", "message"]
    assert cost_for().as_json()["budget"] is None
    per_hour = cost_for().per_hour_json()
    assert list(per_hour) == ["idle", "min", "max", "on_demand", "prices_region"]
    assert list(per_hour["on_demand"]) == ["idle", "min", "max"]


def test_bad_budget():
    assert any("hourly_budget: '-1' is not valid" in p for p in problems(hourly_budget="-1"))


@pytest.mark.parametrize("version, today, extended", [
    ("1.33", "2026-11-27", True), ("1.33", "2026-07-31", False), ("1.34", "2026-12-15", False),
    ("1.34", "2027-01-02", True), ("1.36", "2027-01-02", False),
])
def test_control_plane_price_follows_eks_support(version, today, extended):
    from datetime import date
    cost = estimate(parse(eks_version=version), today=date.fromisoformat(today))
    plane = cost.control_plane
    assert plane.item == "EKS control plane" and plane is cost.fixed[0]
    assert plane.per_hour == (0.60 if extended else 0.10)
    assert ("EXTENDED support" in plane.detail) is extended


def test_extended_support_is_warned_about():
    plan = plan_for("eks_version=1.33")  # standard support ended 2026-07
    assert any("eks_version 1.33 is in EKS extended support" in w for w in plan.warnings)


# --------------------------------------------------------------------- issue 13: idle, min, max on two bases
# The expected figures below are worked out from the price table itself (data/*.yaml read here), not from the code.

ROOT_DATA = Path(__file__).resolve().parent.parent / "data"
PRICE_TABLE = yaml.safe_load((ROOT_DATA / "prices.yaml").read_text())
TYPES = yaml.safe_load((ROOT_DATA / "instance_types.yaml").read_text())["instance_types"]


def od(name: str) -> float:
    return TYPES[name]["on_demand"]


def spot(name: str) -> float:
    """The spot estimate: on-demand less the low end of the family's discount."""
    return od(name) * (1 - PRICE_TABLE["spot_discount_percent"][TYPES[name]["family"]][0] / 100)


def gp3(gib: float) -> float:
    return gib * PRICE_TABLE["ebs_gp3_per_gb_month"] / 730


def efs(gib: float) -> float:
    return gib * PRICE_TABLE["efs_standard_per_gb_month"] / 730


# The original blueprint (../shared/FACTS.md): EKS control plane, one NAT gateway, 2 x m5.xlarge core nodes on
# demand with 100 GB gp3 each, EFS 100 GiB, one 8B replica on a g5.2xlarge with a 100 GiB gp3 root.
# One NLB each (its ingress-nginx's, our gateway's): the hourly charge and one NLCU-hour assumed.
NLB = PRICE_TABLE["nlb_per_hour"] + PRICE_TABLE["nlb_nlcu_per_hour"]
BLUEPRINT_FIXED = 0.10 + 0.045 + 2 * od("m5.xlarge") + gp3(2 * 100) + efs(100) + gp3(100) + NLB
BLUEPRINT_SPOT = BLUEPRINT_FIXED + spot("g5.2xlarge")
BLUEPRINT_ON_DEMAND = BLUEPRINT_FIXED + od("g5.2xlarge")

# The dev stack (Pulumi.dev.yaml: one 8B model, 0..5 replicas; defaults otherwise): control plane, logs (audit 1.0 +
# authenticator 0.05 GB/day, ingested at $0.50/GB, 30 days kept at $0.03/GB-month), one NAT, 2 x t4g.medium on
# demand with 30 GiB each, the 8B model's 40 GiB EFS cache, Prometheus 50 GiB, Open WebUI 10 GiB.
DEV_FIXED = (0.10 + 1.05 * 0.50 / 24 + 1.05 * 30 * 0.03 / 730 + 0.045 + 2 * od("t4g.medium") + gp3(2 * 30)
             + efs(40) + gp3(50) + gp3(10) + NLB)
# Its CPU pool: monitoring (Prometheus 200m+10m reloader / 1024+32 MiB, Alertmanager 20m/132, Grafana 120m/384,
# the operator 100m/100, kube-state-metrics 10m/190), Open WebUI 250m/1024, KEDA 3 x 100m/100, the HTTP add-on
# (interceptor 2 x 100m/64, scaler 50m/32), the AWS Load Balancer Controller 2 x 50m/128: 14 pods, 1360m,
# 3602 MiB, plus the DaemonSets (aws-node 25m, kube-proxy 100m, ebs-csi-node 10m/40 MiB, and pod-identity,
# efs-csi-node, node-exporter: 6 pods). 1495m, 3642 MiB, 20 pods: a c7g.large (3055 MiB) cannot, an m6g.large (1930m, 6844 MiB, 29 pods) can, and at 60% off
# it is the cheapest spot estimate ($0.0308 vs m7g.large's $0.0310), and the cheapest on demand ($0.077).
DEV_POOL_SPOT = spot("m6g.large") + gp3(100)
DEV_POOL_ON_DEMAND = od("m6g.large") + gp3(100)
DEV_GPU_SPOT = spot("g6.2xlarge") + gp3(40)  # per replica, with its 40 GiB root volume
DEV_GPU_ON_DEMAND = od("g6.2xlarge") + gp3(40)


def dev_cost(dev_plan) -> CostEstimate:
    return CostEstimate.from_json(dev_plan.outputs["cost_estimate"])


def test_dev_stack_figures_from_the_price_table(dev_plan):
    out = dev_plan.outputs["estimated_cost_per_hour"]
    cents = dict(abs=0.005)  # the outputs are rounded to cents
    assert out["idle"] == pytest.approx(DEV_FIXED + DEV_POOL_SPOT, **cents)
    assert out["min"] == pytest.approx(DEV_FIXED + DEV_POOL_SPOT + DEV_GPU_SPOT, **cents)
    assert out["max"] == pytest.approx(DEV_FIXED + DEV_POOL_SPOT + 5 * DEV_GPU_SPOT, **cents)
    assert out["on_demand"]["idle"] == pytest.approx(DEV_FIXED + DEV_POOL_ON_DEMAND, **cents)
    assert out["on_demand"]["min"] == pytest.approx(DEV_FIXED + DEV_POOL_ON_DEMAND + DEV_GPU_ON_DEMAND, **cents)
    assert out["on_demand"]["max"] == pytest.approx(DEV_FIXED + DEV_POOL_ON_DEMAND + 5 * DEV_GPU_ON_DEMAND, **cents)
    cost = dev_cost(dev_plan)
    assert cost.blueprint.per_hour.spot == pytest.approx(BLUEPRINT_SPOT, abs=1e-3)
    assert cost.blueprint.per_hour.on_demand == pytest.approx(BLUEPRINT_ON_DEMAND, abs=1e-3)
    [node] = cost.cpu_pool.spot.nodes
    assert (node.instance_type, node.count, node.capacity_type) == ("m6g.large", 1, "spot")
    # 12, and the gateway's controllers, two proxies and the load balancer controller's two (issue 14): one node still
    assert len(node.pods) == 18


def test_the_targets_of_issue_13(dev_plan):
    """The dev stack against the original blueprint priced the same way (the issue's table)."""
    out = dev_plan.outputs["estimated_cost_per_hour"]
    assert out["min"] <= 0.8 * BLUEPRINT_SPOT  # one replica serving, spot basis
    assert out["on_demand"]["min"] <= 0.8 * BLUEPRINT_ON_DEMAND  # one replica serving, on demand
    assert out["idle"] <= 0.3 * BLUEPRINT_SPOT  # the model at zero, against the blueprint's spot basis
    ratios = dev_cost(dev_plan).vs_blueprint
    assert ratios.spot.min == pytest.approx(out["min"] / BLUEPRINT_SPOT, abs=0.01)
    assert ratios.on_demand.min == pytest.approx(out["on_demand"]["min"] / BLUEPRINT_ON_DEMAND, abs=0.01)
    assert ratios.spot.idle == pytest.approx(out["idle"] / BLUEPRINT_SPOT, abs=0.01)


def test_a_model_at_zero_leaves_no_gpu_node_in_the_estimate():
    cold = cost_for(nim_models='[{"name": "meta/llama3-8b-instruct", "min_replicas": 0}]')
    [m] = cold.models
    assert m.replicas == Replicas(idle=0, min=1, max=5)
    assert m.per_hour.spot.idle == 0 and m.per_hour.on_demand.idle == 0
    assert m.per_hour.spot.min == pytest.approx(DEV_GPU_SPOT, abs=1e-3)  # "min" is one replica serving
    for basis in ("spot", "on_demand"):
        idle = getattr(cold.total_per_hour, basis).idle
        assert idle == pytest.approx(cold.fixed_per_hour + getattr(cold.cpu_pool, basis).per_hour, abs=0.005)
    # kept warm (min_replicas 1), its idle figure holds one GPU node
    warm = cost_for(nim_models='[{"name": "meta/llama3-8b-instruct", "min_replicas": 1}]')
    assert warm.models[0].per_hour.spot.idle == pytest.approx(DEV_GPU_SPOT, abs=1e-3)
    assert warm.total_per_hour.spot.idle - warm.cpu_pool.spot.per_hour == pytest.approx(
        cold.total_per_hour.spot.idle - cold.cpu_pool.spot.per_hour + DEV_GPU_SPOT, abs=0.01)


def test_an_on_demand_only_model_costs_the_same_on_both_bases():
    cost = cost_for(nim_models='[{"name": "meta/llama3-8b-instruct", "capacity_types": ["on-demand"]}]')
    [m] = cost.models
    assert m.per_hour.spot == m.per_hour.on_demand
    assert m.per_hour.on_demand.max == pytest.approx(5 * DEV_GPU_ON_DEMAND, abs=1e-3)


DS = PodLoad(cpu_m=180, memory_mib=120, pods=6)  # the CPU nodes' DaemonSets with monitoring
SMALL_A, SMALL_B, SMALL_C = (PoolWorkload("a", 100, 128), PoolWorkload("b", 200, 256), PoolWorkload("c", 100, 128))
X86 = PoolWorkload("x86-only", 1000, 2048, arches=("amd64",))


@pytest.mark.parametrize("pods, families, expected", [
    # room on an m7g.medium: 940m - 135m, 3286 - 40 MiB, 8 - 6 pods: two small pods fit
    pytest.param([SMALL_A, SMALL_B], ("m7g", "m7i"), {"m7g.medium": 1}, id="small pods on one small node"),
    pytest.param([X86], ("m7g", "m6i"), {"m6i.large": 1}, id="an amd64-only pod forces an x86 type"),
    pytest.param([X86, SMALL_A, SMALL_B], ("m7g", "m6i"), {"m6i.large": 1}, id="the rest share the x86 node"),
    pytest.param([X86, PoolWorkload("arm-only", 500, 512, arches=("arm64",))], ("m7g", "m6i"),
                 {"m6i.large": 1, "m7g.medium": 1}, id="each pod on its architecture"),
    # three pods need three pod slots: not an m7g.medium (two free), the c7g.large ($0.0725) instead
    pytest.param([SMALL_A, SMALL_B, SMALL_C], ("m7g", "c7g"), {"c7g.large": 1}, id="pod slots count"),
    # 4 GiB: not a c7g.large (3055 - 40 MiB free), an m7g.large
    pytest.param([PoolWorkload("mem", 500, 4096)], ("c7g", "m7g"), {"m7g.large": 1}, id="memory counts"),
    # 1800m: not an m7g.large (1930 - 135m free), an m7g.xlarge
    pytest.param([PoolWorkload("cpu", 1800, 512)], ("m7g",), {"m7g.xlarge": 1}, id="the DaemonSets' CPU counts"),
    pytest.param([], ("m7g",), {}, id="no pod, no node"),
])
def test_cpu_pool_sizing(pods, families, expected):
    nodes = size_cpu_pool(pods, DATA.in_families(families), DS, lambda t: t.on_demand)
    assert {n.instance_type: n.count for n in nodes} == expected
    assert sorted(p for n in nodes for p in n.pods) == sorted(w.name for w in pods for _ in range(w.replicas))
    for n in nodes:
        assert all(n.arch in next(w for w in pods if w.name == p).arches for p in n.pods)


@pytest.mark.parametrize("pods, families, message", [
    ([PoolWorkload("huge", 8000, 1024)], ("m7g", "m7i"),
     "huge (8000m CPU, 1024 MiB, amd64/arm64) fits no allowed instance type beside the node DaemonSets (180m, "
     "120 MiB, 6 pods): the largest, m7i.2xlarge, allocates 7910m, 29317 MiB"),
    ([X86], ("m7g",), "x86-only (1000m CPU, 2048 MiB, amd64) fits no allowed instance type beside the node "
                      "DaemonSets (180m, 120 MiB, 6 pods): none is amd64"),
])
def test_a_pod_no_allowed_type_holds_is_an_error(pods, families, message):
    with pytest.raises(CpuPoolFitError) as info:
        size_cpu_pool(pods, DATA.in_families(families), DS, lambda t: t.on_demand)
    assert str(info.value) == message


def test_a_pod_too_big_for_every_allowed_type_is_a_config_problem(monkeypatch):
    monkeypatch.setitem(CPU_POOL, "huge", PoolWorkload("huge", 64000, 1024))
    uncached = '[{"name": "meta/llama3-8b-instruct", "precache": false}]'  # Graviton-only needs no pre-cache Job
    assert problems(cpu_instance_families='["m7g"]', nim_models=uncached) == [
        "cpu_instance_families: huge (64000m CPU, 1024 MiB, amd64/arm64) fits no allowed instance type beside the "
        "node DaemonSets (180m, 120 MiB, 6 pods): the largest, m7g.xlarge, allocates 3920m, 14103 MiB; allowed: add a "
        "family with larger instance types"]


def test_the_cpu_pool_is_priced_on_each_basis():
    pool = cost_for().cpu_pool  # one 8B model kept warm: no HTTP add-on, 15 pods, still one m6g.large
    assert pool.requests == PodLoad(1380, 4658, 15) and pool.daemonsets_per_node == DS
    assert [(n.instance_type, n.count, n.capacity_type) for n in pool.spot.nodes] == [("m6g.large", 1, "spot")]
    assert pool.spot.per_hour == pytest.approx(DEV_POOL_SPOT, abs=1e-4)
    assert [(n.instance_type, n.capacity_type) for n in pool.on_demand.nodes] == [("m6g.large", "on-demand")]
    assert pool.on_demand.per_hour == pytest.approx(DEV_POOL_ON_DEMAND, abs=1e-4)
    assert pool.spot.vcpus == 2 and pool.within_limit
    # without spot, the spot basis prices the pool on demand too
    on_demand_only = cost_for(cpu_capacity_types='["on-demand"]').cpu_pool
    assert on_demand_only.spot == on_demand_only.on_demand
    assert on_demand_only.spot.per_hour == pytest.approx(DEV_POOL_ON_DEMAND, abs=1e-4)


def test_the_cpu_pool_follows_the_switches():
    bare = cost_for(monitoring="false", open_webui="false", gateway="false").cpu_pool
    # KEDA, and the HTTP add-on (without monitoring every model goes through the interceptor); no node-exporter
    assert bare.workloads == ("keda-operator", "keda-operator-metrics-apiserver", "keda-admission-webhooks",
                              "keda-add-ons-http-interceptor", "keda-add-ons-http-external-scaler")
    assert bare.requests == PodLoad(550, 460, 6) and bare.daemonsets_per_node == PodLoad(180, 120, 5)
    # the gateway's controllers and proxies; the rate limit service and its Redis only while a key has a limit
    gateway = ("envoy-gateway", "ai-gateway-controller", "envoy-proxy", "aws-load-balancer-controller")
    assert set(gateway) <= set(cost_for().cpu_pool.workloads)
    assert not {"envoy-ratelimit", "ratelimit-redis"} & set(cost_for().cpu_pool.workloads)
    limited = cost_for(api_keys='[{"name": "a", "tokens_per_minute": 1000}]').cpu_pool.workloads
    assert {"envoy-ratelimit", "ratelimit-redis"} <= set(limited)
    assert not set(gateway) & set(cost_for(gateway="false").cpu_pool.workloads)
    benchmark = cost_for(aiperf="true").cpu_pool
    x86 = [n for n in benchmark.spot.nodes if n.arch == "amd64"]
    assert x86 and "aiperf" in x86[0].pods
    assert all(DATA.types[n.instance_type].arch == n.arch for n in benchmark.spot.nodes)


def test_a_cpu_limit_below_the_pool_is_reported(capsys):
    plan = plan_for("cpu_limit=1")
    assert "cpu_limit 1 cannot hold the CPU pool's pods: the estimate's nodes have 2 vCPUs" in plan.warnings
    assert plan_cli.main(["--set", "cpu_limit=1"]) == 0
    assert "WARNING: cpu_limit 1 cannot hold the CPU pool's pods" in capsys.readouterr().out


def test_the_blueprint_is_priced_from_the_same_data():
    prices = load_prices()
    bp = blueprint_cost(DATA, prices)
    assert bp.per_hour.spot == pytest.approx(BLUEPRINT_SPOT, abs=1e-3)
    assert bp.per_hour.on_demand == pytest.approx(BLUEPRINT_ON_DEMAND, abs=1e-3)
    gpu = next(i for i in bp.items if i.item.startswith("GPU node (")).detail
    assert gpu.startswith("1 x g5.2xlarge")
    # both have an NLB now, priced alike
    assert [i.per_hour.spot for i in bp.items if i.item == "Network Load Balancer"] == [pytest.approx(NLB)]
    assert "NLB" not in bp.left_out
    # the same data: another g5 discount moves its spot basis only
    cheaper = {**prices, "spot_discount_percent": {**prices["spot_discount_percent"], "g5": [70, 72]}}
    moved = blueprint_cost(DATA, cheaper)
    assert moved.per_hour.on_demand == bp.per_hour.on_demand
    assert bp.per_hour.spot - moved.per_hour.spot == pytest.approx(od("g5.2xlarge") * 0.13, abs=1e-3)


def test_cold_start_per_model_in_the_json_and_the_table(dev_plan):
    cost = dev_cost(dev_plan)
    [m] = cost.models
    # an 8B model: GPU node 180 s; 12 GB at 28 MB/s is 429 s; 16 GB at 1500 MiB/s is 11 s, + 70 s engine start
    # a wake: 12 GB of image through the NAT at $0.045/GB, 16 GB of weights read from EFS at $0.03/GB, and the
    # spot g6.2xlarge with its 40 GiB root volume for the 690 s it starts
    wake = 12 * 0.045 + 16 * 0.03 + (spot("g6.2xlarge") + gp3(40)) * 690 / 3600
    assert as_json(m.cold_start) == {"gpu_node_s": 180, "image_pull_s": 429, "model_load_s": 81, "total_s": 690,
                                     "minutes": 12, "wake_cost": pytest.approx(wake, abs=1e-3),
                                     "break_even_minutes": math.ceil(wake / (spot("g6.2xlarge") + gp3(40)) * 60)}
    assert 1.0 < wake < 1.2 and 120 < m.cold_start.break_even_minutes < 140
    lines = cost.render()
    at = next(i for i, line in enumerate(lines) if line.startswith("meta/llama3-8b-instruct "))
    assert lines[at + 1].startswith("  cold start ~12 min (est.)")
    assert lines[at + 2].startswith("  each wake ~$1.12") and "idle_minutes + ~129 min" in lines[at + 2]
    assert "GPU node 180 s + image pull 429 s + model load 81 s = 690 s" in lines[at + 1]
    several = "\n".join(cost_for(nim_models='["meta/llama3-8b-instruct", "meta/llama-3.2-1b-instruct"]').render())
    assert several.count("cold start ~") == 2
    for source in coldstart.SOURCES.values():  # printed once, under the table
        assert several.count(source) == 1


def test_pre_cache_jobs_are_noted_not_counted():
    [job] = cost_for().precache
    minutes = 40 * 1024 / 50 / 60  # the 8B model's 40 GiB at the estimated 50 MiB/s
    # 1 vCPU, 2 GiB, amd64: the cheapest x86 spot estimate, m5.large at 54% off ($0.0442; m6i.large ties; the
    # estimate takes the first name)
    assert job.instance_type == "m5.large" and job.download_minutes == pytest.approx(minutes, abs=0.1)
    assert job.per_run.spot == pytest.approx(spot("m5.large") * minutes / 60, abs=1e-4)
    assert job.per_run.on_demand == pytest.approx(od("m5.large") * minutes / 60, abs=1e-4)
    assert cost_for(nim_models='[{"name": "meta/llama3-8b-instruct", "precache": false}]').precache == ()
    # config refuses Graviton-only CPU families while a model is pre-cached; should none hold the Job, it says so
    cfg = parse()
    graviton = replace(cfg, cpu=replace(cfg.cpu, instance_families=("m7g",)))
    [job] = estimate(graviton).precache
    assert job.instance_type is None and job.per_run is None
    assert any("no allowed CPU instance type holds the Job" in line for line in estimate(graviton).render())
