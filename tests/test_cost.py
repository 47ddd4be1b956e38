"""Cost estimate: cheapest fitting instance per model, fixed items, totals, budget and GPU limit checks."""

from __future__ import annotations

import json

import pytest

from components.cost import estimate, load_prices
from components.instances import load_instances
from tests.conftest import plan_for
from tests.test_config import parse
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
    [m] = cost_for(nim_models=models, gpu_instance_families=families)["models"]
    assert m["instance_type"] == expected
    chosen = DATA.types[expected]
    assert m["on_demand_per_hour"] == chosen.on_demand
    # nothing cheaper in the allowed families fits
    fits = parse(nim_models=models, gpu_instance_families=families).models[0].instance_types
    assert all(DATA.types[n].on_demand >= chosen.on_demand for n in fits)


def test_known_prices_and_spot_estimate():
    [m] = cost_for(gpu_instance_families='["g5"]')["models"]
    assert m["on_demand_per_hour"] == 1.212  # g5.2xlarge, us-east-1
    low, high = load_prices()["spot_discount_percent"]["g5"]
    assert m["spot_discount_percent"] == [low, high]
    assert m["spot_estimate_per_hour"] == pytest.approx(1.212 * (1 - low / 100), abs=1e-4)
    assert m["priced_as"] == "spot"
    [od] = cost_for(nim_models='[{"name": "meta/llama3-8b-instruct", "capacity_types": ["on-demand"]}]')["models"]
    assert od["spot_estimate_per_hour"] is None and od["priced_as"] == "on-demand"


def test_totals_add_up():
    cost = cost_for(nim_models='["meta/llama3-8b-instruct", {"name": "meta/llama-3.2-1b-instruct", "min_replicas": 2, '
                               '"max_replicas": 3}]', single_nat_gateway="false")
    fixed = sum(i["per_hour"] for i in cost["fixed"])
    assert cost["fixed_per_hour"] == pytest.approx(fixed, abs=1e-3)
    assert cost["total_per_hour"]["min"] == pytest.approx(fixed + sum(m["per_hour"]["min"] for m in cost["models"]),
                                                          abs=0.01)
    assert cost["total_per_hour"]["max"] == pytest.approx(fixed + sum(m["per_hour"]["max"] for m in cost["models"]),
                                                          abs=0.01)
    assert cost["total_per_month"]["max"] == pytest.approx(cost["total_per_hour"]["max"] * 730, abs=5)
    items = {i["item"]: i for i in cost["fixed"]}
    assert items["EKS control plane"]["per_hour"] == 0.10
    assert items["NAT gateways"]["per_hour"] == pytest.approx(3 * 0.045)
    assert items["Core node group"]["per_hour"] == pytest.approx(2 * DATA.types["m5.xlarge"].on_demand)
    small = cost["models"][1]
    per_replica = small["spot_estimate_per_hour"]
    volume = 200 * 0.08 / 730
    assert small["per_hour"]["min"] == pytest.approx(2 * (per_replica + volume), abs=1e-3)
    assert small["per_hour"]["max"] == pytest.approx(3 * (per_replica + volume), abs=1e-3)


def test_monitoring_and_webui_volumes_only_when_on():
    items = {i["item"] for i in cost_for(monitoring="false", open_webui="false")["fixed"]}
    assert "Prometheus volume" not in items and "Open WebUI volume" not in items


def test_unknown_core_type_is_said():
    item = [i for i in cost_for(core_instance_type="z9.mega")["fixed"] if i["item"] == "Core node group"][0]
    assert item["per_hour"] is None and "not in the price table" in item["detail"]


def test_budget_check_fires_and_says_what_would_fit(capsys):
    code = plan_cli.main(["--set", "hourly_budget=2"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "OVER BUDGET: the estimate at max_replicas is $3.27/h, $1.27 over hourly_budget $2.00" in out
    assert "meta/llama3-8b-instruct costs up to $2.59/h (5 x g6.2xlarge at $0.52/h); max_replicas 2 would fit" in out
    assert "exceeds hourly_budget" in err
    plan = plan_for("hourly_budget=2")
    assert any(w.startswith("hourly_budget: the estimate at max_replicas") for w in plan.warnings)
    assert plan_cli.main(["--set", "hourly_budget=5"]) == 0
    capsys.readouterr()


def test_budget_suggests_a_cheaper_family():
    cost = cost_for(nim_models='[{"name": "meta/llama3-8b-instruct", "max_replicas": 2}]',
                    gpu_instance_families='["p5"]', hourly_budget="5")
    assert not cost["budget"]["ok"]
    assert "a cheaper family would hold it: g4dn" not in cost["budget"]["message"]  # 8B fp16 does not fit a T4
    assert "a cheaper family would hold it: g5, g6, g6e" in cost["budget"]["message"]
    assert "p4d" not in cost["budget"]["message"]  # fits, but p4d.24xlarge costs more than p5.4xlarge


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
    out = dev_plan.outputs["estimated_cost_per_hour"]
    assert out == {"min": dev_plan.outputs["cost_estimate"]["total_per_hour"]["min"],
                   "max": dev_plan.outputs["cost_estimate"]["total_per_hour"]["max"], "prices_region": "us-east-1"}


def test_bad_budget():
    from tests.test_config import problems
    assert any("hourly_budget: '-1' is not valid" in p for p in problems(hourly_budget="-1"))


@pytest.mark.parametrize("version, today, extended", [
    ("1.33", "2026-11-27", True), ("1.33", "2026-07-31", False), ("1.34", "2026-12-15", False),
    ("1.34", "2027-01-02", True), ("1.36", "2027-01-02", False),
])
def test_control_plane_price_follows_eks_support(version, today, extended):
    from datetime import date
    cost = estimate(parse(eks_version=version), today=date.fromisoformat(today))
    plane = cost["fixed"][0]
    assert plane["item"] == "EKS control plane"
    assert plane["per_hour"] == (0.60 if extended else 0.10)
    assert ("EXTENDED support" in plane["detail"]) is extended


def test_extended_support_is_warned_about():
    plan = plan_for("eks_version=1.33")  # standard support ended 2026-07
    assert any("eks_version 1.33 is in EKS extended support" in w for w in plan.warnings)
