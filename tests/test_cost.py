"""Cost estimate: cheapest fitting instance per model, fixed items, totals, budget and GPU limit checks."""

from __future__ import annotations

import json

import pytest

from planning.cost import CostEstimate, GpuLimitCheck, estimate, load_prices
from planning.gpus import DAEMONSET_CPU_M, DAEMONSET_MEMORY_MIB, FitError, fit_model, fits
from planning.instances import InstanceType, load_instances
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
    assert cost.total_per_hour.min == pytest.approx(fixed + sum(m.per_hour.min for m in cost.models), abs=0.01)
    assert cost.total_per_hour.max == pytest.approx(fixed + sum(m.per_hour.max for m in cost.models), abs=0.01)
    assert cost.total_per_month.max == pytest.approx(cost.total_per_hour.max * 730, abs=5)
    items = {i.item: i for i in cost.fixed}
    assert items["EKS control plane"].per_hour == 0.10
    assert items["NAT gateways"].per_hour == pytest.approx(3 * 0.045)
    assert items["Core node group"].per_hour == pytest.approx(2 * DATA.types["t4g.medium"].on_demand)
    small = cost.models[1]
    per_replica = small.spot_estimate_per_hour
    volume = 40 * 0.08 / 730  # the default GPU root volume (OS only; images on local NVMe)
    assert small.per_hour.min == pytest.approx(2 * (per_replica + volume), abs=1e-3)
    assert small.per_hour.max == pytest.approx(3 * (per_replica + volume), abs=1e-3)


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
    top = cost_for().total_per_hour.max
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
    assert "OVER BUDGET: the estimate at max_replicas is $2.88/h, $0.88 over hourly_budget $2.00" in out
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
    assert "Estimated cost:" in out and "TOTAL per hour" in out and "TOTAL per month (730 h)" in out
    assert "us-east-1 list prices" in out and "your region: us-west-2" in out
    doc = json.loads(target.read_text())
    cost = doc["cost"]
    assert set(cost["total_per_hour"]) == {"min", "max"}
    assert cost["total_per_hour"]["min"] < cost["total_per_hour"]["max"]
    [m] = cost["models"]
    assert m["instance_type"] == "g6.2xlarge" and m["on_demand_per_hour"] and m["spot_estimate_per_hour"]
    assert {i["item"] for i in cost["fixed"]} >= {"EKS control plane", "NAT gateways", "Core node group",
                                                   "EFS model cache", "Prometheus volume"}


def test_stack_output(dev_plan):
    """The outputs are the estimate of the stack's own config (Pulumi.dev.yaml: one 8B model that scales to zero,
    defaults otherwise)."""
    expected = cost_for(nim_models='[{"name": "meta/llama3-8b-instruct", "min_replicas": 0}]')
    assert dev_plan.outputs["estimated_cost_per_hour"] == {"min": expected.total_per_hour.min,
                                                           "max": expected.total_per_hour.max,
                                                           "prices_region": "us-east-1"}
    exported = CostEstimate.from_json(dev_plan.outputs["cost_estimate"])
    assert exported.total_per_hour == expected.total_per_hour
    assert exported.models == expected.models


@pytest.mark.parametrize("overrides", [
    {}, {"hourly_budget": "2", "gpu_limit": "3"}, {"hourly_budget": "100"},
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
    """Stacks already up export `cost_estimate` and `estimated_cost_per_hour`: same keys, same order, same types."""
    doc = cost_for(hourly_budget="2").as_json()
    assert list(doc) == ["region", "prices_region", "prices_date", "note", "eks_extended_support", "fixed",
                         "fixed_per_hour", "models", "total_per_hour", "total_per_month", "gpu_limit", "budget"]
    assert list(doc["fixed"][0]) == ["item", "per_hour", "detail"]
    assert list(doc["models"][0]) == [
        "name", "instance_type", "gpus_per_replica", "gpus_per_node", "capacity_types", "on_demand_per_hour",
        "spot_estimate_per_hour", "spot_discount_percent", "priced_as", "min_replicas", "max_replicas", "per_hour"]
    assert isinstance(doc["models"][0]["capacity_types"], list)
    assert isinstance(doc["models"][0]["spot_discount_percent"], list)
    assert list(doc["models"][0]["per_hour"]) == list(doc["total_per_hour"]) == ["min", "max"]
    assert list(doc["gpu_limit"]) == ["limit", "gpus_at_max_replicas", "ok"]
    assert list(doc["budget"]) == ["hourly_budget", "ok", "message"]
    assert cost_for().as_json()["budget"] is None
    assert list(cost_for().per_hour_json()) == ["min", "max", "prices_region"]


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
