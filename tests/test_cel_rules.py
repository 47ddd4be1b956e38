"""Gate 2c: the CRDs' `x-kubernetes-validations` (CEL) rules, evaluated as the API server does on create.

The rules come from the upstream CRDs in ../shared/reference and run in a real CEL implementation (cel-expr-python);
nothing here copies a rule by hand except the planted defects' expected messages.
"""

from __future__ import annotations

import copy
from typing import Any, Iterator

import pytest

from tests import conformance
from tests.conftest import GATEWAY_FULL, P5, needs_reference, plan_for

# Plans whose custom resources must pass every rule (the Karpenter settings are what shape the NodePools).
PLANS = {
    "dev": (),
    "p5-on-demand": ('gpu_instance_families=["p5"]', 'gpu_capacity_types=["on-demand"]'),
    "p4de-p5-limit-32": P5,
    "gateway-full": GATEWAY_FULL,
}


def reference_rules() -> Iterator[tuple[tuple[str, str], dict[str, Any]]]:
    """((apiVersion, kind), rule) for every x-kubernetes-validations entry in every reference CRD."""
    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            yield from node.get("x-kubernetes-validations") or []
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    for key, schema in conformance.crd_schemas().items():
        for rule in walk(schema):
            yield key, rule


def custom_resources(*overrides: str) -> list[dict[str, Any]]:
    plan = plan_for(*overrides)
    assert plan.error is None, plan.error
    return [m for _, m in conformance.kubernetes_objects(plan) if not conformance.is_builtin(m)]


def dev_object(kind: str, name: str = "gpu") -> dict[str, Any]:
    [m] = [m for m in custom_resources() if m["kind"] == kind and m["metadata"]["name"] == name]
    return copy.deepcopy(m)


def failures(schema: dict[str, Any], value: Any) -> list[tuple[str, str]]:
    return list(conformance.rule_failures(value, schema))


# ------------------------------------------------------------------------------------------- the evaluator


@needs_reference
def test_every_rule_of_the_reference_crds_compiles_or_is_listed_as_unsupported():
    """A rule the evaluator cannot compile would be a gap: every one compiles, or is allow-listed with a reason."""
    problems, seen_unsupported, count = [], set(), 0
    for (api_version, kind), rule in reference_rules():
        if rule["rule"] in conformance.UNSUPPORTED_RULES:
            seen_unsupported.add(rule["rule"])
            continue
        for key in ("rule", "messageExpression"):
            if key in rule:
                count += 1
                try:
                    conformance.compile_rule(rule[key], conformance.uses_old_self(rule[key])
                                             and bool(rule.get("optionalOldSelf")))
                except conformance.CelRuleError as err:
                    problems.append(f"{api_version} {kind}: {rule[key]!r}: {err}")
    assert not problems, "\n".join(problems)
    assert count > 1000  # Karpenter, KEDA, Envoy Gateway, Envoy AI Gateway, AWS Load Balancer Controller
    # the allow-list is no wider than it must be: each entry is in a reference CRD and really does not compile
    assert seen_unsupported == set(conformance.UNSUPPORTED_RULES)
    for rule in conformance.UNSUPPORTED_RULES:
        with pytest.raises(conformance.CelRuleError):
            conformance.compile_rule(rule)


@needs_reference
def test_the_karpenter_rules_use_only_what_the_evaluator_provides():
    """The Kubernetes-only function the Karpenter rules call (regex `find`) is there and behaves as documented."""
    karpenter = [r["rule"] for (api, _), r in reference_rules() if api.startswith("karpenter.")]
    assert len(karpenter) == 64
    assert sum(".find(" in r for r in karpenter) == 10
    assert conformance.evaluate_rule("self.find('^[^@]+')", "al2023@v20260714") == ("al2023", None)
    assert conformance.evaluate_rule('self.find("^([^/]+)").endsWith("karpenter.sh")', "a.karpenter.sh/x") == (True, None)


def test_kubernetes_regex_find():
    # Kubernetes regex library: the first match, or '' when there is none
    assert conformance.k8s_find("abc 123", "[0-9]+") == "123"
    assert conformance.k8s_find("abc 123", "xyz") == ""
    assert conformance.k8s_find("karpenter.k8s.aws/instance-family", "^([^/]+)") == "karpenter.k8s.aws"
    assert conformance.k8s_find("no-slash", "^([^/]+)") == "no-slash"
    assert conformance.evaluate_rule("self.find('[0-9]+')", "abc 123") == ("123", None)


def test_kubernetes_is_ip():
    # Kubernetes IP address library, isIP: the documented examples and the documented exclusions
    for ip in ("127.0.0.1", "::1", "192.168.0.1", "2001:db8::abcd"):
        assert conformance.k8s_is_ip(ip), ip
    for not_ip in ("127.0.0.256", ":::1", "::ffff:1.2.3.4", "fe80::1%eth0", "127.0.0.01", "example.com", ""):
        assert not conformance.k8s_is_ip(not_ip), not_ip
    assert conformance.evaluate_rule("self.all(h, !isIP(h))", ["example.com", "10.0.0.1"]) == (False, None)


def test_property_names_and_values_are_presented_as_the_api_server_does():
    schema = {"type": "object", "properties": {
        "namespace": {"type": "string"}, "x-prop": {"type": "string"}, "weight": {"type": "number"},
        "ca": {"type": "string", "format": "byte"}, "at": {"type": "string", "format": "date-time"},
        "ttl": {"type": "string", "format": "duration"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}
    value = {"namespace": "a", "x-prop": "b", "weight": 1, "ca": "aGk=", "at": "2026-01-02T03:04:05Z", "ttl": "1h30m",
             "labels": {"x-prop": "c"}, "undeclared": 1}
    presented = conformance.cel_value(value, schema)
    rule = ("self.__namespace__ == 'a' && self.x__dash__prop == 'b' && type(self.weight) == double"
            " && self.ca == b'hi' && self.at < timestamp('2026-01-02T03:04:06Z') && self.ttl == duration('90m')"
            " && self.labels['x-prop'] == 'c' && !has(self.undeclared)")
    assert conformance.evaluate_rule(rule, presented) == (True, None)
    assert conformance.cel_property_name("a__b.c/d") == "a__underscores__b__dot__c__slash__d"
    assert conformance.cel_property_name("0abc") is None


# ------------------------------------------------------------------------------------------ rule semantics


def test_a_rule_runs_where_it_is_declared_on_the_whole_value_and_only_when_present():
    schema = {"type": "object", "properties": {
        "items": {"type": "array", "items": {"type": "string"},
                  "x-kubernetes-validations": [{"rule": "self.size() <= 2", "message": "at most two"}]},
        "absent": {"type": "string", "x-kubernetes-validations": [{"rule": "false", "message": "never"}]},
        "nullable": {"type": "string", "nullable": True,
                     "x-kubernetes-validations": [{"rule": "false", "message": "never"}]}}}
    assert failures(schema, {"items": ["a", "b"], "nullable": None}) == []
    assert failures(schema, {"items": ["a", "b", "c"]}) == [("items", "at most two")]


def test_messages_message_expression_and_the_default():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "x-kubernetes-validations": [
        {"rule": "self.n < 3", "messageExpression": "'n is ' + string(self.n)", "message": "n too big"},
        {"rule": "self.n < 2", "messageExpression": "''", "message": "blank messageExpression: message"},
        {"rule": "self.n < 1"}]}
    assert failures(schema, {"n": 5}) == [
        ("", "n is 5"), ("", "blank messageExpression: message"), ("", "failed rule: self.n < 1")]


def test_a_rule_that_does_not_compile_or_fails_to_run_is_reported():
    schema = {"type": "object", "properties": {"s": {"type": "string"}}, "x-kubernetes-validations": [
        {"rule": "self.s.noSuchFunction()", "message": "m1"}, {"rule": "int(self.s) > 0", "message": "m2"},
        {"rule": "self.s", "message": "m3"}]}
    [(_, broken), (_, error), (_, not_bool)] = failures(schema, {"s": "x"})
    assert "does not compile" in broken and "noSuchFunction" in broken
    assert error.startswith("m2 (the rule fails to evaluate:")
    assert not_bool == "m3 (the rule yields 'x', not a bool)"


def test_a_transition_rule_is_not_applied_on_create():
    immutable = {"rule": "self.x == oldSelf.x", "message": "x is immutable"}
    schema = {"type": "object", "properties": {"x": {"type": "string"}}, "x-kubernetes-validations": [immutable]}
    assert failures(schema, {"x": "a"}) == []
    # were it evaluated, it would fail: there is no oldSelf on create
    assert conformance.evaluate_rule(immutable["rule"], {"x": "a"})[1] is not None
    # with optionalOldSelf it is evaluated on create, with oldSelf = optional.none()
    schema["x-kubernetes-validations"] = [
        {"rule": "!oldSelf.hasValue() || self.x == oldSelf.value().x", "optionalOldSelf": True, "message": "kept"},
        {"rule": "oldSelf.hasValue()", "optionalOldSelf": True, "message": "only on update"}]
    assert failures(schema, {"x": "a"}) == [("", "only on update")]
    assert not conformance.uses_old_self("self.x == 'oldSelf'")


@needs_reference
def test_the_karpenter_transition_rules_are_skipped_on_create():
    transitions = sorted(r["rule"] for (api, _), r in reference_rules()
                         if api.startswith("karpenter.") and conformance.uses_old_self(r["rule"]))
    assert transitions == ["has(self.replicas) == has(oldSelf.replicas)", "self.group == oldSelf.group",
                           "self.kind == oldSelf.kind"]
    nodepool = dev_object("NodePool")
    assert conformance.validate_custom_resource_rules(nodepool) == []
    # had they run, the object would fail: oldSelf has no value on create
    assert conformance.evaluate_rule("self.group == oldSelf.group", nodepool["spec"]["template"]["spec"]
                                     ["nodeClassRef"])[1] is not None


# ------------------------------------------------------------------------------------------ the real plans


@needs_reference
@pytest.mark.parametrize("overrides", [pytest.param(o, id=name) for name, o in PLANS.items()])
def test_custom_resources_of_the_plans_pass_their_crd_rules(overrides, monkeypatch):
    evaluated = []
    real = conformance.evaluate_rule
    monkeypatch.setattr(conformance, "evaluate_rule", lambda e, *a: evaluated.append(e) or real(e, *a))
    customs = custom_resources(*overrides)
    assert {m["kind"] for m in customs} >= {"NodePool", "EC2NodeClass"}
    problems = [p for m in customs for p in conformance.validate_custom_resource_rules(m)]
    assert not problems, "\n".join(problems)
    # not vacuous: the rules on labels, requirements, selector terms, tags and block devices ran
    assert len(evaluated) > 60 and any(".find(" in e for e in evaluated)


# ------------------------------------------------------------------------ planted defects only CEL catches


def _label(key: str):
    return lambda m: m["spec"]["template"]["metadata"]["labels"].update({key: "x"})


def _requirement(**requirement):
    return lambda m: m["spec"]["template"]["spec"]["requirements"].insert(0, requirement)


DEFECTS = {
    "label karpenter.sh/nodepool": ("NodePool", _label("karpenter.sh/nodepool"), "spec/template/metadata/labels",
                                    'label "karpenter.sh/nodepool" is restricted'),
    "label kubernetes.io/hostname": ("NodePool", _label("kubernetes.io/hostname"), "spec/template/metadata/labels",
                                     'label "kubernetes.io/hostname" is restricted'),
    "label in karpenter.k8s.aws": ("NodePool", _label("karpenter.k8s.aws/gpu"), "spec/template/metadata/labels",
                                   'label domain "karpenter.k8s.aws" is restricted'),
    "label in a karpenter.sh subdomain": ("NodePool", _label("x.karpenter.sh/pool"), "spec/template/metadata/labels",
                                          'label domain "karpenter.sh" is restricted'),
    "requirement key karpenter.sh/nodepool": (
        "NodePool", _requirement(key="karpenter.sh/nodepool", operator="In", values=["gpu"]),
        "spec/template/spec/requirements/0/key", 'label "karpenter.sh/nodepool" is restricted'),
    "Gt with two values": (
        "NodePool", _requirement(key="karpenter.k8s.aws/instance-generation", operator="Gt", values=["4", "5"]),
        "spec/template/spec/requirements",
        "requirements operator 'Gt', 'Lt', 'Gte', or 'Lte' must have a single positive integer value"),
    "minValues above the values": (
        "NodePool", _requirement(key="karpenter.k8s.aws/instance-size", operator="In", values=["xlarge"], minValues=2),
        "spec/template/spec/requirements",
        "requirements with 'minValues' must have at least that many values specified in the 'values' field"),
    "budget schedule without duration": (
        "NodePool", lambda m: m["spec"]["disruption"]["budgets"].append({"nodes": "0", "schedule": "@daily"}),
        "spec/disruption/budgets", "'schedule' must be set with 'duration'"),
    "alias with another AMI term": (
        "EC2NodeClass", lambda m: m["spec"]["amiSelectorTerms"].append({"tags": {"team": "ml"}}), "spec/amiSelectorTerms",
        "'alias' is mutually exclusive, cannot be set with a combination of other amiSelectorTerms"),
    "amiFamily against the alias": (
        "EC2NodeClass", lambda m: m["spec"].update(amiFamily="Bottlerocket"), "spec",
        "if set, amiFamily must be 'AL2023' or 'Custom' when using an AL2023 alias"),
    "unknown alias family": (
        "EC2NodeClass", lambda m: m["spec"]["amiSelectorTerms"][0].update(alias="ubuntu@latest"),
        "spec/amiSelectorTerms/0/alias", "family is not supported, must be one of the following: 'al2', 'al2023', "
        "'bottlerocket', 'windows2019', 'windows2022', 'windows2025'"),
    "role and instanceProfile": (
        "EC2NodeClass", lambda m: m["spec"].update(instanceProfile="nodes"), "spec",
        "must specify exactly one of ['role', 'instanceProfile']"),
    "restricted tag": (
        "EC2NodeClass", lambda m: m["spec"]["tags"].update({"kubernetes.io/cluster/other": "owned"}), "spec/tags",
        "tag contains a restricted tag matching kubernetes.io/cluster/"),
    "two root volumes": (
        "EC2NodeClass", lambda m: m["spec"]["blockDeviceMappings"].append(
            {"deviceName": "/dev/xvdb", "ebs": {"volumeSize": "10Gi"}, "rootVolume": True}),
        "spec/blockDeviceMappings", "must have only one blockDeviceMappings with rootVolume"),
}


@needs_reference
@pytest.mark.parametrize("kind, plant, path, message", [pytest.param(*d, id=name) for name, d in DEFECTS.items()])
def test_the_gate_catches_a_defect_the_structural_schema_lets_through(kind, plant, path, message):
    m = dev_object(kind)
    plant(m)
    assert conformance.validate_custom_resource_schema(m) == []  # the structural schema alone passes it
    expected = f"{kind}/gpu: {path}: {message}"
    assert conformance.validate_custom_resource_rules(m) == [expected]
    assert conformance.validate_custom_resource(m) == [expected]  # the gate test_conformance.py applies


@needs_reference
def test_a_rule_that_fails_to_evaluate_rejects_the_object():
    """As in the API server: `int('x')` in the Gt/Lt rule is an error, and the object is refused."""
    m = dev_object("NodePool")
    _requirement(key="karpenter.k8s.aws/instance-generation", operator="Gt", values=["x"])(m)
    assert conformance.validate_custom_resource_schema(m) == []
    [problem] = conformance.validate_custom_resource_rules(m)
    assert problem.startswith("NodePool/gpu: spec/template/spec/requirements: requirements operator 'Gt'")
    assert "fails to evaluate" in problem
