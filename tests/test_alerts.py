"""Alert delivery: Alertmanager -> SNS topic (encrypted) -> email, with Alertmanager's AWS identity through EKS Pod
Identity; and, without `alert_email`, no SNS at all and a warning that alerts reach nobody."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from components import alerts, monitoring
from tests import conformance
from tests.conftest import ALERTS, needs_dir, needs_reference, plan_for, release

EMAIL = "ops@example.com"
NAME = "nim-on-eks-dev-monitoring-alerts"
CHART = Path(__file__).resolve().parent.parent.parent / "shared" / "charts" / "kube-prometheus-stack-88.5.3"
needs_chart = needs_dir(CHART, f"{CHART} is absent (the pinned chart beside the clone)")

SNS_TYPES = ("aws:sns/topic:Topic", "aws:sns/topicSubscription:TopicSubscription", "aws:sns/topicPolicy:TopicPolicy")

# What Alertmanager v0.34.0 documents (docs/configuration.md: <route>, <receiver>, <sns_config>, <sigv4_config>,
# <inhibit_rule>, the top level): `alertmanager.config` is free-form for the chart's values gate, so this is its gate.
AM_TOP = {"global", "route", "inhibit_rules", "receivers", "templates", "time_intervals", "mute_time_intervals",
          "tracing"}
AM_ROUTE = {"receiver", "group_by", "continue", "matchers", "group_wait", "group_interval", "repeat_interval",
            "mute_time_intervals", "active_time_intervals", "routes"}
AM_INHIBIT = {"source_matchers", "target_matchers", "equal"}
AM_SNS = {"send_resolved", "api_url", "sigv4", "topic_arn", "subject", "phone_number", "target_arn", "message",
          "attributes", "http_config", "use_aws_http_client"}
AM_SIGV4 = {"region", "access_key", "secret_key", "profile", "role_arn", "external_id"}


@pytest.fixture(scope="module")
def plan():
    p = plan_for(f"alert_email={EMAIL}")
    assert p.error is None, p.error
    return p


def stack_release(p):
    return release(p, "kube-prometheus-stack")


def association(p):
    return p.one("aws:eks/podIdentityAssociation:PodIdentityAssociation", f"{NAME}-alertmanager")


def duration_s(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", text))


# ------------------------------------------------------------------------------------------ with alert_email


def test_topic_is_encrypted_and_named_after_the_cluster(plan):
    topic = plan.one("aws:sns/topic:Topic")
    assert topic.inputs["name"] == "nim-on-eks-dev-alerts"
    assert topic.inputs["kmsMasterKeyId"] == "alias/aws/sns"
    assert plan.outputs["alerts_topic_arn"].split(":")[2] == "sns"


def test_email_subscription(plan):
    sub = plan.one("aws:sns/topicSubscription:TopicSubscription")
    assert (sub.inputs["protocol"], sub.inputs["endpoint"]) == ("email", EMAIL)
    assert sub.inputs["topic"] == plan.outputs["alerts_topic_arn"]
    # the user is told a confirmation email must be accepted first
    assert EMAIL in plan.outputs["alerts_email_confirmation"]
    assert "confirmation" in plan.outputs["alerts_email_confirmation"]


def test_role_is_trusted_by_eks_pod_identity_only(plan):
    role = plan.one("aws:iam/role:Role", f"{NAME}-alertmanager")
    assert json.loads(role.inputs["assumeRolePolicy"]) == {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": ["pods.eks.amazonaws.com"]},
         "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
    assert f":role/{NAME}-alertmanager" in association(plan).inputs["roleArn"]  # the association uses this role


def test_role_may_only_publish_to_the_topic(plan):
    topic_arn = plan.outputs["alerts_topic_arn"]
    role_name = association(plan).inputs["roleArn"].rsplit("/", 1)[-1]
    inline = [p for p in plan.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == role_name]
    attached = [a for a in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if a.inputs["role"] == role_name]
    assert len(inline) == 1 and attached == []
    doc = json.loads(inline[0].inputs["policy"])
    assert doc == {"Version": "2012-10-17", "Statement": [
        {"Sid": "PublishAlerts", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn}]}
    assert conformance.lint_policy(doc) == []


def test_topic_policy(plan):
    topic_arn = plan.outputs["alerts_topic_arn"]
    policy = plan.one("aws:sns/topicPolicy:TopicPolicy")
    assert policy.inputs["arn"] == topic_arn
    doc = json.loads(policy.inputs["policy"])
    allow, deny = doc["Statement"]
    assert allow == {"Sid": "AlertmanagerPublishes", "Effect": "Allow",
                     "Principal": {"AWS": association(plan).inputs["roleArn"]},
                     "Action": "sns:Publish", "Resource": topic_arn}
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Resource"] == topic_arn
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert conformance.lint_policy(doc, "resource") == []


def test_association_is_alertmanagers_service_account(plan):
    values = stack_release(plan).inputs["values"]["alertmanager"]
    assert values["serviceAccount"]["create"] is True
    assoc = association(plan)
    assert assoc.inputs["namespace"] == stack_release(plan).inputs["namespace"] == "monitoring"
    assert assoc.inputs["serviceAccount"] == values["serviceAccount"]["name"]
    assert assoc.inputs["clusterName"] == "nim-on-eks-dev"
    # it waits for the cluster itself, not just for a string
    assert plan.depends_on(assoc, plan.one("eks:index:Cluster"))


@needs_chart
def test_chart_gives_alertmanager_the_service_account_named_in_the_values():
    """The chart renders `alertmanager.serviceAccount.name` (and, unset, `<fullname>-alertmanager`: the same name,
    so setting it renames nothing), and the Alertmanager resource runs under that account."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    define = re.search(r'define "kube-prometheus-stack\.alertmanager\.serviceAccountName".*?end -}}', helpers, re.S)
    assert define, "the chart no longer defines the service account helper"
    assert ('default (print (include "kube-prometheus-stack.fullname" .) "-alertmanager") '
            ".Values.alertmanager.serviceAccount.name") in define.group(0)
    for template in ("alertmanager/serviceaccount.yaml", "alertmanager/alertmanager.yaml"):
        text = (CHART / "templates" / template).read_text()
        assert 'template "kube-prometheus-stack.alertmanager.serviceAccountName" .' in text, template
    assert monitoring.ALERTMANAGER_SERVICE_ACCOUNT == f"{monitoring.fullname('kube-prometheus-stack')}-alertmanager"
    assert monitoring.ALERTMANAGER_SERVICE_ACCOUNT == "kube-prometheus-stack-alertmanager"


def test_identity_and_topic_exist_before_alertmanager(plan):
    release = stack_release(plan)
    for r in (association(plan), plan.one("aws:sns/topicPolicy:TopicPolicy"),
              plan.one("aws:iam/rolePolicy:RolePolicy", f"{NAME}-alertmanager-publish"),
              plan.one("aws:sns/topicSubscription:TopicSubscription")):
        assert plan.depends_on(release, r), r.name


def test_alertmanager_routes_alerts_to_the_topic(plan):
    config = stack_release(plan).inputs["values"]["alertmanager"]["config"]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert len(receivers) == len(config["receivers"])
    default = receivers[config["route"]["receiver"]]
    [sns] = default["sns_configs"]
    assert sns["topic_arn"] == plan.outputs["alerts_topic_arn"]
    assert sns["sigv4"] == {"region": "us-west-2"}  # no keys, profile or role: Pod Identity credentials
    assert sns["send_resolved"] is True
    assert "\n" not in sns["subject"] and 'reReplaceAll "(?s)^(.{0,99}).*$"' in sns["subject"]  # SNS: < 100 chars
    assert "nim-on-eks-dev" in sns["subject"] and "{{ range .Alerts }}" in sns["message"]
    assert ".Annotations.summary" in sns["message"] and ".Annotations.description" in sns["message"]
    # every route names a receiver that exists; grouping and repeats fit email
    for route in [config["route"], *config["route"]["routes"]]:
        assert route["receiver"] in receivers
    assert config["route"]["group_by"] == ["alertname", "namespace"]
    assert duration_s(config["route"]["group_interval"]) >= 5 * 60
    assert duration_s(config["route"]["repeat_interval"]) >= 4 * 3600


@pytest.mark.parametrize("alert", ["Watchdog", "InfoInhibitor"])
def test_silent_alerts_go_to_a_null_receiver(plan, alert):
    config = stack_release(plan).inputs["values"]["alertmanager"]["config"]
    receivers = {r["name"]: r for r in config["receivers"]}
    [route] = [r for r in config["route"]["routes"] if f'alertname = "{alert}"' in r.get("matchers", [])]
    assert route.get("continue", False) is False
    assert set(receivers[route["receiver"]]) == {"name"}  # no *_configs: notifies nobody


def test_info_alerts_are_inhibited(plan):
    config = stack_release(plan).inputs["values"]["alertmanager"]["config"]
    assert {"target_matchers": ["alertname = InfoInhibitor"]} in config["inhibit_rules"]


@needs_reference
def test_chart_inhibit_rules_are_kept(plan):
    config = stack_release(plan).inputs["values"]["alertmanager"]["config"]
    chart = conformance.chart_values("kube-prometheus-stack-88.5.3")
    assert config["inhibit_rules"] == chart["alertmanager"]["config"]["inhibit_rules"]
    assert config["templates"] == chart["alertmanager"]["config"]["templates"]


def test_alertmanager_config_uses_only_documented_fields(plan):
    config = stack_release(plan).inputs["values"]["alertmanager"]["config"]
    assert set(config) <= AM_TOP
    for route in [config["route"], *config["route"]["routes"]]:
        assert set(route) <= AM_ROUTE, route
    for rule in config["inhibit_rules"]:
        assert set(rule) <= AM_INHIBIT, rule
    for receiver in config["receivers"]:
        assert set(receiver) <= {"name", "sns_configs"}, receiver
        for sns in receiver.get("sns_configs", []):
            assert set(sns) <= AM_SNS and set(sns["sigv4"]) <= AM_SIGV4


def test_arns_come_from_resources_in_the_regions_partition():
    """No ARN is typed in: each one is a resource's output, so it carries the partition (here AWS GovCloud)."""
    p = plan_for(f"alert_email={EMAIL}", "aws:region=us-gov-west-1")
    assert p.error is None, p.error
    topic_arn, role_arn = p.outputs["alerts_topic_arn"], association(p).inputs["roleArn"]
    found = set()
    for r in [*p.within(ALERTS), stack_release(p)]:
        found |= set(re.findall(r"arn:[a-z-]+:[^\"\\\s,]+", json.dumps(r.inputs)))
    assert found == {topic_arn, role_arn}
    source = Path(alerts.__file__).read_text() + Path(monitoring.__file__).read_text()
    assert "arn:aws:" not in source


@needs_reference
def test_alert_plan_passes_the_conformance_gates(plan):
    values = [e for r, chart, version in conformance.helm_releases(plan)
              for e in conformance.release_values_errors(r, chart, version)]
    assert values == []
    docs = [*conformance.policy_documents(plan),  # the gate's IAM inputs, and the SNS topic's resource policy
            *[(r, "resource", json.loads(r.inputs["policy"])) for r in plan.of_type("aws:sns/topicPolicy:TopicPolicy")]]
    assert {r.type for r, _, _ in docs} >= {"aws:iam/rolePolicy:RolePolicy", "aws:sns/topicPolicy:TopicPolicy"}
    iam_problems = [f"{r.name}: {e}" for r, kind, doc in docs for e in conformance.lint_policy(doc, kind)]
    assert iam_problems == []


# --------------------------------------------------------------------------------------- without alert_email


def test_no_alert_email_no_sns_and_a_warning(dev_plan):
    assert not [r for r in dev_plan.resources if r.type in SNS_TYPES] and not dev_plan.of_type(ALERTS)
    assert "config" not in stack_release(dev_plan).inputs["values"]["alertmanager"]
    assert "alerts_topic_arn" not in dev_plan.outputs
    [warning] = [w for w in dev_plan.warnings if "receiver" in w]
    assert "Alertmanager has no receiver" in warning and "pulumi config set alert_email" in warning


def test_monitoring_off_creates_no_sns_even_with_alert_email():
    p = plan_for(f"alert_email={EMAIL}", "monitoring=false")
    assert p.error is None, p.error
    assert not [r for r in p.resources if r.type in SNS_TYPES]
    assert any("alert_email" in w and "monitoring is false" in w for w in p.warnings)
    assert not any("receiver" in w for w in plan_for("monitoring=false").warnings)


@pytest.mark.parametrize("bad", ["ops", "ops@example", "ops example.com", "@example.com", "ops@@example.com"])
def test_an_invalid_email_is_a_config_error_naming_the_key(bad):
    p = plan_for(f"alert_email={bad}")
    assert p.error is not None and "alert_email" in p.error and "email address" in p.error
    assert p.resources == []


def test_receiver_warning():
    assert alerts.receiver_warning(True, EMAIL) is None
    assert alerts.receiver_warning(False, None) is None
    assert "no receiver" in alerts.receiver_warning(True, None)


def test_alertmanager_rolls_when_its_pod_identity_association_appears():
    """Pod Identity credentials reach pods created after the association: the pod template names it, so adding
    alert_email to a running stack re-creates Alertmanager instead of only hot-reloading its config."""
    plan = plan_for("alert_email=ops@example.com")
    [association] = plan.within(ALERTS, type_="aws:eks/podIdentityAssociation:PodIdentityAssociation")
    stack = stack_release(plan)
    annotations = stack.inputs["values"]["alertmanager"]["alertmanagerSpec"]["podMetadata"]["annotations"]
    assert annotations == {"nim-on-eks/pod-identity-association": association.outputs["associationId"]}
    assert association.urn in stack.dependencies
