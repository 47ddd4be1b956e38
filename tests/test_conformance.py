"""The offline conformance gates, applied to every stack configuration the tests exercise.

Each gate is first shown to catch a known-bad input, so a gate that silently passes everything fails here.
"""

from __future__ import annotations

import pytest

from tests import conformance
from tests.conftest import GATEWAY_FULL, P5, THREE_MODELS, needs_reference, plan_for

# Configurations whose plans must pass every gate (later components add theirs).
CONFIGS = {
    "dev": (),
    "multi-nat-2az": ("single_nat_gateway=false", "availability_zones=2", "eks_version=1.33"),
    "p5-on-demand": P5,
    "three-models": (*THREE_MODELS, "aiperf=true"),
    "monitoring-off": ("monitoring=false", "open_webui=false"),
    "gateway-full": GATEWAY_FULL,
    "gateway-off": ("gateway=false",),
}


def plans():
    return [pytest.param(overrides, id=name) for name, overrides in CONFIGS.items()]


# -------------------------------------------------------------------------------- 1. Kubernetes objects


def test_gate_catches_a_bad_kubernetes_object():
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    assert conformance.validate_kubernetes(good, "1.36") == []
    bad = {**good, "metadata": {"name": "x", "lables": {}}}
    [problem] = conformance.validate_kubernetes(bad, "1.36")
    assert "lables" in problem


@pytest.mark.parametrize("overrides", plans())
def test_kubernetes_objects_match_the_schema_of_the_cluster_version(overrides):
    plan = plan_for(*overrides)
    assert plan.error is None, plan.error
    version = plan.one("eks:index:Cluster").inputs["version"]
    problems = []
    for _, m in conformance.kubernetes_objects(plan):
        if conformance.is_builtin(m):
            problems += conformance.validate_kubernetes(m, version)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------- 2. CRDs and Helm values (reference)


@needs_reference
def test_gate_catches_a_bad_custom_resource():
    nodepool = {
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "x"},
        "spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                        "name": "gpu"},
                                       "requirements": [{"key": "a", "operator": "In", "values": ["b"]}]}}},
    }
    assert conformance.validate_custom_resource(nodepool) == []
    nodepool["spec"]["template"]["spec"]["expireAfter"] = 720  # must be a duration string
    nodepool["spec"]["disruption"] = {"consolidateAfter": "30s", "consolidationPolicy": "Sometimes"}
    nodepool["spec"]["limit"] = {}
    problems = conformance.validate_custom_resource(nodepool)
    assert len(problems) == 3, problems


@needs_reference
def test_gate_catches_a_bad_helm_values_key():
    chart = conformance.chart_values("karpenter-1.14.1")
    assert conformance.values_key_errors({"settings": {"clusterName": "x"}, "podAnnotations": {"a": "b"}}, chart) == []
    errors = conformance.values_key_errors({"settings": {"clustername": "x"}, "replica": 2}, chart)
    assert errors == ["settings.clustername: not a key of the chart's values.yaml",
                      "replica: not a key of the chart's values.yaml"]


@needs_reference
@pytest.mark.parametrize("overrides", plans())
def test_custom_resources_match_their_crds(overrides):
    plan = plan_for(*overrides)
    customs = [m for _, m in conformance.kubernetes_objects(plan) if not conformance.is_builtin(m)]
    assert {m["kind"] for m in customs} >= {"NodePool", "EC2NodeClass"}
    problems = [p for m in customs for p in conformance.validate_custom_resource(m)]
    assert not problems, "\n".join(problems)


@needs_reference
@pytest.mark.parametrize("overrides", plans())
def test_helm_values_exist_in_the_charts_values_yaml(overrides):
    plan = plan_for(*overrides)
    releases = conformance.helm_releases(plan)
    assert releases
    problems = [p for r, chart, version in releases for p in conformance.release_values_errors(r, chart, version)]
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------------- 3. IAM


def test_gate_catches_a_bad_policy():
    bad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:RunInstancez"], "Resource": "*"}]}
    assert any("UNKNOWN_ACTION" in p for p in conformance.lint_policy(bad))
    malformed = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]}
    assert conformance.lint_policy(malformed)
    federated = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                                                         "Principal": {"Federated": "evil.example.com"}}]}
    assert any("UNKNOWN_FEDERATION_SOURCE" in p for p in conformance.lint_policy(federated, "trust"))


@pytest.mark.parametrize("overrides", plans())
def test_every_iam_policy_document_lints_clean(overrides):
    plan = plan_for(*overrides)
    docs = conformance.policy_documents(plan)
    assert docs, "the plan has IAM policy documents (at least the node role's trust policy)"
    problems = [f"{r.type} {r.name}: {p}" for r, kind, doc in docs for p in conformance.lint_policy(doc, kind)]
    assert not problems, "\n".join(problems)
