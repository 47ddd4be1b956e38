"""Defects a first real `pulumi up` (or a later one) would have hit, each pinned by a test that fails without its fix
(issue 11): Open WebUI's persistent config, ARN partitions. The others are tested where they live: the security
group and access entry in test_system_checks.py and test_karpenter.py, expiry and root volumes in test_karpenter.py.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import OPEN_WEBUI, parse, plan_for, problems
from tools import opaque


def test_open_webui_takes_the_model_list_from_the_stack_on_every_start(dev_plan):
    """OPENAI_API_BASE_URLS is PersistentConfig in open-webui: with persistence on (its default, any value but
    "true" turns it off) the database copy from the first start would win over a changed nim_models."""
    [deployment] = dev_plan.within(OPEN_WEBUI, type_="kubernetes:apps/v1:Deployment")
    env = {e["name"]: e.get("value") for e in deployment.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ENABLE_PERSISTENT_CONFIG"].lower() != "true"
    assert "OPENAI_API_BASE_URLS" in env and "OPENAI_API_KEYS" in env


def test_a_changed_model_list_rolls_open_webui():
    """The URLs are in the pod template, so a new model list is a new ReplicaSet (and a restart that reads it)."""
    def env(plan):
        [d] = plan.within(OPEN_WEBUI, type_="kubernetes:apps/v1:Deployment")
        return {e["name"]: e.get("value") for e in d.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}

    # (without the gateway: through it, Open WebUI has one URL and lists the models the gateway routes)
    two = plan_for('nim_models=["meta/llama3-8b-instruct", "meta/llama-3.2-1b-instruct"]', "gateway=false")
    assert env(two)["OPENAI_API_BASE_URLS"].count(";") == 1
    assert env(plan_for("gateway=false"))["OPENAI_API_BASE_URLS"].count(";") == 0


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_govcloud_plan_writes_every_arn_in_its_partition():
    """Issue 11, defect 7: ARNs written as `arn:aws:...` are wrong in aws-us-gov (access policy, managed policies)."""
    plan = plan_for("aws:region=us-gov-west-1")
    assert plan.error is None, plan.error
    wrong = [(r.type, r.name, s) for r in plan.resources if not r.implied
             for s in _strings(r.inputs) if "arn:aws:" in s]
    assert not wrong, wrong[:5]
    arns = [s for r in plan.resources for s in _strings(r.inputs) if s.startswith("arn:aws-us-gov:")]
    assert any(":iam::aws:policy/AmazonEKSWorkerNodePolicy" in a for a in arns)
    assert any(":iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy" in a for a in arns)
    # the cluster admin access policy, passed to pulumi-eks
    plan = plan_for("aws:region=us-gov-west-1", 'cluster_admins=["arn:aws-us-gov:iam::123456789012:role/ops"]')
    entries = plan.one("eks:index:Cluster").inputs["accessEntries"]
    [policy] = entries["admin-0"]["accessPolicies"].values()
    assert policy["policyArn"] == "arn:aws-us-gov:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    controller = [json.loads(r.inputs["policy"]) for r in plan.of_type("aws:iam/policy:Policy")]
    assert all(s.startswith("arn:aws-us-gov:") or s == "*" for doc in controller for st in doc["Statement"]
               for s in ([st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]))


def test_the_commercial_plan_writes_aws_arns(dev_plan):
    inside = {r.urn for r in dev_plan.resources if r.implied}
    assert not [s for r in dev_plan.resources if r.urn not in inside
                for s in _strings(r.inputs) if s.startswith("arn:aws-")]
    assert [r for r in dev_plan.resources if r.created_by == opaque.BY_AWS]


@pytest.mark.parametrize("region, partition", [("cn-north-1", "aws-cn"), ("cn-northwest-1", "aws-cn"),
                                               ("us-iso-east-1", "aws-iso"), ("us-isob-east-1", "aws-iso-b"),
                                               ("us-isof-south-1", "aws-iso-f"), ("eu-isoe-west-1", "aws-iso-e"),
                                               ("eusc-de-east-1", "aws-eusc")])
def test_partitions_not_built_for_are_refused_before_anything_is_created(region, partition):
    found = problems(**{"aws:region": region})
    assert f"aws:region: '{region}' is in the {partition} partition, which nim-on-eks does not support; allowed: " \
           "a region of the aws (commercial) or aws-us-gov (GovCloud) partition" in found


@pytest.mark.parametrize("region", ["us-gov-west-1", "us-gov-east-1", "us-west-2", "eu-central-1"])
def test_supported_partitions_pass(region):
    assert parse(**{"aws:region": region}).region == region


def test_no_ready_replica_alert_waits_out_the_longest_first_start_and_only_that():
    """The critical alert must not page on every first deploy (a first start downloads the model for up to
    `startup_minutes`), yet must still fire for a serving model that lost its replicas."""
    from planning.catalog import load_catalog
    from components.nim import first_start_minutes, startup_minutes
    catalog = load_catalog()
    models = ("meta/llama3-8b-instruct", "meta/llama-3.1-70b-instruct")
    plan = plan_for(f'nim_models=["{models[0]}", {{"name": "{models[1]}", "gpus": 4}}]',
                    'gpu_instance_families=["g6e", "p4de", "p5"]', "gpu_limit=64")
    assert plan.error is None, plan.error
    [rule] = [r for g in plan.one("kubernetes:monitoring.coreos.com/v1:PrometheusRule").inputs["spec"]["groups"]
              for r in g["rules"] if r["alert"] == "NimModelNoReadyReplica"]
    longest = max(first_start_minutes(catalog.models[m].cache_gib) for m in models)
    assert longest >= max(startup_minutes(catalog.models[m].cache_gib) for m in models) + 20
    assert rule["expr"].endswith(f"< {longest * 60})") and rule["for"] == "10m"
