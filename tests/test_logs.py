"""EKS control-plane logs: a log group the stack owns (name EKS writes to, bounded retention), created before the
cluster, the configured log types, their cost, and the README's upgrade command for stacks EKS made the group for."""

from __future__ import annotations

import re
import shlex

import pytest

from planning.config import CLUSTER_LOG_TYPES, LOG_RETENTION_DAYS
from planning.cost import estimate, load_prices
from tests.conftest import ROOT, parse, plan_for, problems

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def log_line(**overrides):
    [item] = [i for i in estimate(parse(**overrides)).fixed if i.item == "Control-plane logs"]
    return item


# ------------------------------------------------------------------------------------------------------ cost


def test_default_cost_line_is_ingestion_plus_steady_state_storage():
    prices = load_prices()
    per_day = sum(prices["eks_control_plane_log_gb_per_day"][t] for t in ("audit", "authenticator"))
    expected = (per_day * prices["cloudwatch_logs_ingestion_per_gb"] / 24
                + per_day * 30 * prices["cloudwatch_logs_storage_per_gb_month"] / prices["hours_per_month"])
    line = log_line()
    assert line.per_hour == pytest.approx(expected, abs=1e-4)
    assert line.per_hour > 0
    assert "audit, authenticator" in line.detail and "ASSUMED" in line.detail and "(30 days)" in line.detail


def test_cost_line_follows_the_log_types_both_ways():
    fewer = log_line(cluster_log_types='["authenticator"]').per_hour
    default = log_line().per_hour
    every = log_line(cluster_log_types=",".join(CLUSTER_LOG_TYPES)).per_hour
    assert 0 < fewer < default < every


def test_cost_line_follows_the_retention_both_ways():
    shorter = log_line(cluster_log_retention_days="7").per_hour
    default = log_line().per_hour
    longer = log_line(cluster_log_retention_days="365").per_hour
    assert shorter < default < longer
    assert "(365 days)" in log_line(cluster_log_retention_days="365").detail


def test_no_log_types_cost_nothing():
    line = log_line(cluster_log_types="[]")
    assert line.per_hour == 0 and "off" in line.detail
    assert log_line(cluster_log_types="[]", cluster_log_retention_days="3653").per_hour == 0


def test_the_plan_prints_the_line(capsys):
    from tools import plan as plan_cli
    assert plan_cli.main(["--set", "cluster_log_retention_days=90"]) == 0
    out, _ = capsys.readouterr()
    [row] = [line for line in out.splitlines() if line.strip().startswith("Control-plane logs")]
    assert "(90 days)" in row and "ASSUMED" in row


# ------------------------------------------------------------------------------------------ the log group


def test_log_group_is_the_one_eks_writes_to_and_comes_first(dev_plan):
    eks = dev_plan.one("eks:index:Cluster")
    group = dev_plan.one(LOG_GROUP)
    assert group.name == "nim-on-eks-dev-control-plane-logs"
    assert group.inputs["name"] == f"/aws/eks/{eks.inputs['name']}/cluster" == "/aws/eks/nim-on-eks-dev/cluster"
    assert group.inputs["retentionInDays"] == 30
    assert group.inputs["tags"] == {"project": "nim-on-eks", "stack": "dev", "nim-on-eks/cluster": "nim-on-eks-dev"}
    # created before the cluster, so EKS finds it instead of making its own; deleted after it
    assert dev_plan.depends_on(eks, group)
    assert eks.inputs["enabledClusterLogTypes"] == ["audit", "authenticator"]


def test_log_group_follows_the_config():
    plan = plan_for("cluster_name=llm-prod", "cluster_log_retention_days=365", 'cluster_log_types=["scheduler","api"]')
    eks = plan.one("eks:index:Cluster")
    group = plan.one(LOG_GROUP)
    assert group.inputs["name"] == "/aws/eks/llm-prod/cluster"
    assert group.inputs["retentionInDays"] == 365
    assert eks.inputs["enabledClusterLogTypes"] == ["api", "scheduler"]
    assert plan.depends_on(eks, group)


def test_no_log_types_no_log_group():
    plan = plan_for("cluster_log_types=[]")
    assert plan.error is None, plan.error
    assert plan.of_type(LOG_GROUP) == []
    assert not plan.one("eks:index:Cluster").inputs.get("enabledClusterLogTypes")


# ----------------------------------------------------------------------------------------------- config


def test_log_types_forms():
    assert parse().logs.types == ("audit", "authenticator")
    assert parse(cluster_log_types="scheduler, audit").logs.types == ("audit", "scheduler")
    assert parse(cluster_log_types='["api"]').logs.types == ("api",)
    assert parse(cluster_log_types=["audit"]).logs.types == ("audit",)  # structured config
    assert parse(cluster_log_types="[]").logs.types == ()
    assert parse(cluster_log_types="").logs.types == ()


@pytest.mark.parametrize("value", ['["audit", "bogus"]', '["audit", "audit"]', '{"audit": true}', "Audit", "[1]"])
def test_bad_log_types_name_the_key(value):
    [problem] = problems(cluster_log_types=value)
    assert problem.startswith("cluster_log_types: ") and "controllerManager" in problem and "[]" in problem


@pytest.mark.parametrize("value", ["0", "2", "31", "-30", "thirty", "true"])
def test_bad_retention_names_the_key(value):
    [problem] = problems(cluster_log_retention_days=value)
    assert problem.startswith(f"cluster_log_retention_days: '{value}' is not valid")
    assert "1, 3, 5, 7, 14, 30" in problem and "3653" in problem and "never expire" in problem


def test_every_retention_cloudwatch_accepts_is_allowed():
    assert 0 not in LOG_RETENTION_DAYS
    for days in LOG_RETENTION_DAYS:
        assert parse(cluster_log_retention_days=str(days)).logs.retention_days == days


def test_a_bad_value_stops_the_program():
    plan = plan_for("cluster_log_retention_days=0")
    assert plan.error and "cluster_log_retention_days: '0' is not valid" in plan.error
    assert [r for r in plan.resources if r.custom] == []


# ------------------------------------------------------------------------------------------- upgrading


def test_readme_import_command_adopts_the_group_the_program_declares(dev_plan):
    """The README's `pulumi import` (for stacks whose group EKS created) must name the program's resource exactly."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(STACK=.*?pulumi import .*?)\npulumi up\n```", readme, re.S)
    assert block, "README lacks the Upgrading import command"
    command = block.group(1).replace("\\\n", " ").splitlines()[-1]
    words = shlex.split(command.replace("$STACK", "dev").replace("$CLUSTER", "nim-on-eks-dev"))
    group = dev_plan.one(LOG_GROUP)
    assert words[:5] == ["pulumi", "import", group.type, group.name, group.inputs["name"]]
    flags, rest = {}, words[5:]
    while rest:
        flag = rest.pop(0)
        if "=" in flag:
            flag, value = flag.split("=", 1)
        else:
            value = rest.pop(0) if rest and not rest[0].startswith("--") else True
        flags[flag] = value
    # the mock runtime puts the root stack type into top-level URNs; the engine does not
    parent = dev_plan.one("nim-on-eks:index:Cluster")
    provider = dev_plan.one("pulumi:providers:aws")
    assert group.parent == parent.urn and group.provider.startswith(provider.urn + "::")
    assert flags["--parent"] == "cluster=" + parent.urn
    assert flags["--provider"] == "aws=" + provider.urn
    assert flags["--protect"] == "false" and flags["--yes"] is True
    assert group.urn == "urn:pulumi:dev::nim-on-eks::nim-on-eks:index:Cluster$" + LOG_GROUP + "::" + group.name
