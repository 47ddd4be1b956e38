"""Monitoring: kube-prometheus-stack, the NIM dashboard, DCGM exporter, alert rules."""

from __future__ import annotations

import json
import re

import pytest

from components.monitoring import DASHBOARD, alert_rules, prometheus_url
from tests import conformance
from tests.conftest import MONITORING, needs_reference, plan_for, release

NAME = "nim-on-eks-dev-monitoring"
# Metrics NIM for LLMs exports (NVIDIA NIM docs, FACTS.md), and the few others the dashboard and rules read.
NIM_METRICS = {"num_requests_running", "num_requests_waiting", "gpu_cache_usage_perc", "prompt_tokens_total",
               "generation_tokens_total", "time_to_first_token_seconds", "time_per_output_token_seconds",
               "e2e_request_latency_seconds", "request_prompt_tokens", "request_generation_tokens"}
DCGM_METRICS = {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_POWER_USAGE"}
KSM_METRICS = {"kube_statefulset_status_replicas_ready", "kube_statefulset_created", "kube_statefulset_replicas",
               "kube_horizontalpodautoscaler_status_desired_replicas",
               "kube_horizontalpodautoscaler_status_current_replicas", "kube_horizontalpodautoscaler_spec_max_replicas"}


KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (histogram suffixes folded onto the base metric)."""
    text = re.sub(r'"[^"]*"', "", expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", text)  # grouping labels
    names = set()
    for match in re.finditer(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\b(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word in KEYWORDS or word.startswith("__") or word == "$__rate_interval":
            continue
        base = re.sub(r"_(bucket|count|sum)$", "", word)
        names.add(base if base in NIM_METRICS else word)
    return names


def test_metric_names():
    assert metric_names('histogram_quantile(0.9, sum by (le, service) (rate(ttft_bucket{a="b"}[5m])))') == {"ttft_bucket"}
    assert metric_names("avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL)") == {"DCGM_FI_DEV_GPU_UTIL"}
    assert metric_names("rate(e2e_request_latency_seconds_count[1m]) > 0.9") == {"e2e_request_latency_seconds"}


def test_kube_prometheus_stack(dev_plan):
    r = release(dev_plan, "kube-prometheus-stack")
    assert (r.inputs["version"], r.inputs["namespace"], r.inputs["name"]) == ("88.5.3", "monitoring",
                                                                              "kube-prometheus-stack")
    assert r.inputs["repositoryOpts"]["repo"] == "https://prometheus-community.github.io/helm-charts"
    spec = r.inputs["values"]["prometheus"]["prometheusSpec"]
    for key in ("serviceMonitorSelectorNilUsesHelmValues", "podMonitorSelectorNilUsesHelmValues",
                "ruleSelectorNilUsesHelmValues"):
        assert spec[key] is False, key  # every monitor and rule, not only the release's
    assert spec["scrapeInterval"] == "30s"
    assert spec["retention"] == "15d" and spec["retentionSize"] == "42GB"
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "gp3" and claim["resources"]["requests"]["storage"] == "50Gi"
    # the volume is deleted with Prometheus: destroy leaves no EBS volume behind
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Delete", "whenScaled": "Retain"}
    values = r.inputs["values"]
    assert values["alertmanager"]["enabled"] is True
    for affinity in (spec["affinity"], values["alertmanager"]["alertmanagerSpec"]["affinity"],
                     values["grafana"]["affinity"], values["prometheusOperator"]["affinity"],
                     values["prometheusOperator"]["admissionWebhooks"]["patch"]["affinity"],
                     values["kube-state-metrics"]["affinity"]):  # Karpenter's CPU nodes only
        [term] = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert term["matchExpressions"] == [{"key": "nim-on-eks/node-pool", "operator": "In", "values": ["cpu"]}]
    assert "tolerations" not in json.dumps(values)  # nothing tolerates the GPU taint
    gp3 = dev_plan.one("kubernetes:storage.k8s.io/v1:StorageClass", "nim-on-eks-dev-storage-gp3")
    assert dev_plan.depends_on(r, gp3)
    # Grafana reads its admin login from this secret: it exists before the chart is installed
    assert dev_plan.depends_on(r, dev_plan.one("kubernetes:core/v1:Secret", f"{NAME}-grafana-admin"))


def test_grafana_password_is_a_secret_everywhere(dev_plan):
    values = release(dev_plan, "kube-prometheus-stack").inputs["values"]["grafana"]
    assert values["admin"] == {"existingSecret": "grafana-admin", "userKey": "admin-user", "passwordKey": "admin-password"}
    assert "adminPassword" not in values
    secret = dev_plan.one("aws:secretsmanager/secret:Secret", f"{NAME}-grafana")
    assert secret.inputs["namePrefix"] == "nim-on-eks-dev-grafana-"
    assert secret.inputs["recoveryWindowInDays"] == 0
    version = dev_plan.one("aws:secretsmanager/secretVersion:SecretVersion", f"{NAME}-grafana")
    assert version.inputs["secretString"] == "[secret]"
    k8s_secret = dev_plan.one("kubernetes:core/v1:Secret", f"{NAME}-grafana-admin")
    assert k8s_secret.inputs["stringData"] == "[secret]"
    password = k8s_secret.revealed["stringData"]["admin-password"]
    assert password == version.revealed["secretString"]
    text = json.dumps([r.as_json() for r in dev_plan.resources]) + json.dumps(dev_plan.outputs)
    assert password not in text
    assert dev_plan.outputs["grafana_secret_name"].startswith("nim-on-eks-dev-grafana-")
    assert dev_plan.outputs["grafana_password_command"] == (
        f"aws secretsmanager get-secret-value --region us-west-2 --secret-id {dev_plan.outputs['grafana_secret_name']}"
        " --query SecretString --output text")
    assert dev_plan.outputs["grafana_port_forward"] == \
        "kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80"


def test_no_prometheus_adapter(dev_plan):
    """KEDA's triggers query Prometheus themselves: nothing needs the custom metrics API any more."""
    assert all(r.inputs["chart"] != "prometheus-adapter" for r in dev_plan.of_type("kubernetes:helm.sh/v3:Release"))


@pytest.mark.parametrize("release_name, url", [
    ("kube-prometheus-stack", "http://kube-prometheus-stack-prometheus.monitoring.svc"),
    ("mon", "http://mon-kube-prometheus-stack-prometheus.monitoring.svc"),
])
def test_prometheus_service_name_follows_the_release(release_name, url):
    assert prometheus_url(release_name) == url


def test_dcgm_exporter(dev_plan):
    r = release(dev_plan, "dcgm-exporter")
    assert (r.inputs["version"], r.inputs["repositoryOpts"]["repo"]) == (
        "4.8.2", "https://nvidia.github.io/dcgm-exporter/helm-charts")
    values = r.inputs["values"]
    assert values["nodeSelector"] == {"nim-on-eks/node-pool": "gpu"}
    assert values["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert values["serviceMonitor"]["enabled"] is True
    errors = conformance.release_values_errors(r, "dcgm-exporter", "4.8.2")
    assert errors == []
    r.inputs["values"]["serviceMonitor"]["interval_typo"] = "1m"
    try:
        assert conformance.release_values_errors(r, "dcgm-exporter", "4.8.2")
    finally:
        del r.inputs["values"]["serviceMonitor"]["interval_typo"]


def panels():
    dashboard = json.loads(DASHBOARD.read_text())
    return dashboard, [p for p in dashboard["panels"] if p["type"] != "row"]


def test_dashboard_json():
    dashboard, found = panels()
    assert "__inputs" not in dashboard and "${DS_" not in DASHBOARD.read_text()
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert "model" in names
    for panel in found:
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            metrics = metric_names(target["expr"])
            assert metrics and metrics <= NIM_METRICS | DCGM_METRICS | KSM_METRICS, (panel["title"], metrics)
    by_title = {p["title"]: p for p in found}
    uses = {title: set().union(*(metric_names(t["expr"]) for t in p["targets"])) for title, p in by_title.items()}
    wanted = ["time_to_first_token_seconds", "time_per_output_token_seconds", "e2e_request_latency_seconds",
              "generation_tokens_total", "prompt_tokens_total", "num_requests_running", "num_requests_waiting",
              "gpu_cache_usage_perc", "kube_statefulset_status_replicas_ready", *DCGM_METRICS]
    for metric in wanted:
        assert any(metric in m for m in uses.values()), metric
    ttft = by_title["Time to first token (p50, p90)"]["targets"]
    assert [t["expr"].split(",")[0] for t in ttft] == ["histogram_quantile(0.5", "histogram_quantile(0.9"]
    assert all('service=~"$model"' in t["expr"] for t in ttft)


def test_dashboard_config_map(dev_plan):
    cm = dev_plan.one("kubernetes:core/v1:ConfigMap", f"{NAME}-nim-dashboard")
    assert cm.inputs["metadata"]["labels"] == {"grafana_dashboard": "1"}
    assert cm.inputs["metadata"]["namespace"] == "monitoring"
    assert json.loads(cm.inputs["data"]["nim.json"]) == json.loads(DASHBOARD.read_text())
    sidecar = release(dev_plan, "kube-prometheus-stack").inputs["values"]["grafana"]["sidecar"]["dashboards"]
    assert (sidecar["label"], sidecar["labelValue"]) == ("grafana_dashboard", "1")


SELECTOR = re.compile(r'([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}')
MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"\s*')
COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)")


def selectors(expr: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    """Each `metric{label op "value", ...}` an expression reads, as (metric, {label: (op, value)})."""
    found = []
    for metric, body in SELECTOR.findall(expr):
        parts = [p for p in body.split(",") if p.strip()]
        matchers = [MATCHER.fullmatch(p) for p in parts]
        assert all(matchers), (expr, body)
        found.append((metric, {m.group(1): (m.group(2), m.group(3)) for m in matchers}))
    return found


def comparison(expr: str) -> tuple[str, str, str]:
    """(left, operator, right) of the one comparison outside parentheses, braces and quotes."""
    depth, quoted, hits = 0, False, []
    for i, ch in enumerate(expr):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "({[":
            depth += 1
        elif not quoted and ch in ")}]":
            depth -= 1
        elif not quoted and depth == 0 and ch in "=!<>" and (i == 0 or expr[i - 1] not in "=!<>"):
            hits.append(i)
    assert len(hits) == 1, (expr, hits)
    op = COMPARISON.match(expr, hits[0]).group(1)
    return expr[:hits[0]].strip(), op, expr[hits[0] + len(op):].strip()


def test_promql_helpers():
    assert selectors('a{x="1", y=~"b.*"} >= c{z!="2"}') == [("a", {"x": ("=", "1"), "y": ("=~", "b.*")}),
                                                            ("c", {"z": ("!=", "2")})]
    assert comparison('max by (s) (m{a="x>y"}) > 0.9') == ('max by (s) (m{a="x>y"})', ">", "0.9")
    assert comparison("a == 0") == ("a", "==", "0")
    with pytest.raises(AssertionError):
        comparison("a > b > c")


def alert_rules_of(plan) -> dict[str, dict]:
    rule = plan.one("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    return {r["alert"]: r for g in rule.inputs["spec"]["groups"] for r in g["rules"]}


def test_alert_rules(dev_plan):
    rules = alert_rules_of(dev_plan)
    assert set(rules) == {"NimModelNoReadyReplica", "NimTimeToFirstTokenHigh", "NimRequestsWaiting",
                          "NimKVCacheNearlyFull", "NimAutoscalerAtMaxReplicas"}
    nim = {"namespace": ("=", "nim")}

    # a model with no Ready replica serves nothing: critical after 10 minutes, unless it is meant to have none (at
    # zero), is within its first start (GPU node, image, download: nim.first_start_minutes, 50 for the dev model's
    # 30-minute window), or is waking from zero (its replica count changed within its cold-start limit, 22 minutes
    # for the dev model: planning/scaling.cold_start_limit_seconds)
    expr = rules["NimModelNoReadyReplica"]["expr"]
    no_ready, wanted, young, waking = re.split(r" (?:and|unless) on \(namespace, statefulset\) ", expr)
    assert re.findall(r" (and|unless) on ", expr) == ["and", "unless", "unless"]
    left, op, right = comparison(no_ready.strip()[1:-1])
    [(metric, matchers)] = selectors(left)
    assert (metric, op, right) == ("kube_statefulset_status_replicas_ready", "==", "0")
    assert matchers == {**nim, "statefulset": ("=~", "nim-llm-.*")}
    left, op, right = comparison(wanted.strip()[1:-1])
    assert (selectors(left), op, right) == ([("kube_statefulset_replicas", matchers)], ">", "0")
    left, op, right = comparison(young.strip()[1:-1])
    assert (op, right) == ("<", str(50 * 60))
    assert left.startswith("(time() - ") and selectors(left) == [("kube_statefulset_created", matchers)]
    left, op, right = comparison(waking.strip()[1:-1])
    assert (op, right) == (">", "0") and left.startswith("changes(") and left.endswith("[22m])")
    assert selectors(left) == [("kube_statefulset_replicas", matchers)]
    # ... and the pattern selects every model's StatefulSet (PromQL regexes are anchored)
    for statefulset in dev_plan.of_type("kubernetes:apps/v1:StatefulSet"):
        if statefulset.inputs["metadata"]["namespace"] == "nim":
            assert re.fullmatch(matchers["statefulset"][1], statefulset.inputs["metadata"]["name"])
    assert (rules["NimModelNoReadyReplica"]["for"], rules["NimModelNoReadyReplica"]["labels"]) == (
        "10m", {"severity": "critical"})

    # p90 (not median) time to first token per Service, over NIM's histogram, above alert_ttft_p90_seconds (3)
    left, op, right = comparison(rules["NimTimeToFirstTokenHigh"]["expr"])
    assert (op, right) == (">", "3")
    assert re.match(r"histogram_quantile\(0\.9,\s*sum by \(le, service\) \(rate\(", left), left
    assert selectors(left) == [("time_to_first_token_seconds_bucket", nim)]

    # any request queued (more than zero waiting) for 5 minutes: the model is at capacity
    left, op, right = comparison(rules["NimRequestsWaiting"]["expr"])
    assert (op, right) == (">", "0")
    assert left.startswith("sum by (service) (") and selectors(left) == [("num_requests_waiting", nim)]

    # the fullest replica's KV cache above 90 % (NIM reports a fraction, 0 to 1)
    left, op, right = comparison(rules["NimKVCacheNearlyFull"]["expr"])
    assert (op, right) == (">", "0.9")
    assert left.startswith("max by (service) (") and selectors(left) == [("gpu_cache_usage_perc", nim)]

    # a model's HPA (KEDA's, named like the model: components/scaling.py) that has reached its maximum (current can
    # only equal max, never exceed it)
    left, op, right = comparison(rules["NimAutoscalerAtMaxReplicas"]["expr"])
    assert op == ">="
    hpas = {**nim, "horizontalpodautoscaler": ("=~", "nim-llm-.*")}
    assert selectors(left) == [("kube_horizontalpodautoscaler_status_current_replicas", hpas)]
    assert selectors(right) == [("kube_horizontalpodautoscaler_spec_max_replicas", hpas)]
    for so in dev_plan.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject"):
        assert re.fullmatch(hpas["horizontalpodautoscaler"][1],
                            so.inputs["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"])

    durations = {name: r["for"] for name, r in rules.items()}
    assert durations == {"NimModelNoReadyReplica": "10m", "NimTimeToFirstTokenHigh": "10m", "NimRequestsWaiting": "5m",
                         "NimKVCacheNearlyFull": "5m", "NimAutoscalerAtMaxReplicas": "15m"}
    assert {name for name, r in rules.items() if r["labels"]["severity"] == "warning"} == set(rules) - {
        "NimModelNoReadyReplica"}
    for r in rules.values():
        assert metric_names(r["expr"]) <= NIM_METRICS | KSM_METRICS, r["alert"]


def test_no_waking_grace_without_a_model_at_zero():
    [group] = alert_rules("nim", 3.0, first_start_minutes=50)
    no_ready = next(r for r in group["rules"] if r["alert"] == "NimModelNoReadyReplica")
    assert "changes(" not in no_ready["expr"]
    plan = plan_for('nim_models=["meta/llama3-8b-instruct"]')  # min_replicas 1: never at zero
    assert "changes(" not in alert_rules_of(plan)["NimModelNoReadyReplica"]["expr"]


def test_alerts_follow_the_config():
    plan = plan_for("alert_ttft_p90_seconds=1.5", "nim_namespace=llm")
    rules = alert_rules_of(plan)
    assert comparison(rules["NimTimeToFirstTokenHigh"]["expr"])[1:] == (">", "1.5")
    # every alert watches the namespace the models run in, not the monitoring namespace
    for r in rules.values():
        found = selectors(r["expr"])
        assert found and all(matchers["namespace"] == ("=", "llm") for _, matchers in found), r["alert"]
    assert plan.one("kubernetes:monitoring.coreos.com/v1:PrometheusRule").inputs["metadata"]["namespace"] == \
        "monitoring"


@needs_reference
def test_alert_rules_match_the_prometheusrule_crd(dev_plan):
    rule = dev_plan.one("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert conformance.validate_custom_resource(conformance.manifest(rule)) == []


def test_disabling_monitoring_removes_all_of_it():
    plan = plan_for("monitoring=false")
    assert not plan.of_type(MONITORING)
    assert plan.of_type("kubernetes:helm.sh/v3:Release") and all(
        r.inputs["chart"] not in ("kube-prometheus-stack", "prometheus-adapter", "dcgm-exporter")
        for r in plan.of_type("kubernetes:helm.sh/v3:Release"))
    assert plan.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler") == []
    assert plan.of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor") == []
    assert [s.name for s in plan.of_type("aws:secretsmanager/secret:Secret")] == ["nim-on-eks-dev-gateway-api-keys"]
    assert plan.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor") == []
    assert "grafana_secret_name" not in plan.outputs
