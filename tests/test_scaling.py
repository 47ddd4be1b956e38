"""Scaling: KEDA and its HTTP add-on (releases, rendered with the real charts), each model's ScaledObject, routes and
URL, and what models scale on with and without monitoring (components/scaling.py, planning/scaling.py)."""

from __future__ import annotations

import copy
import json
import re
from urllib.parse import urlparse

import pytest

from components import scaling as comp
from components.monitoring import PROMETHEUS_PORT, prometheus_url
from planning import versions
from planning.scaling import DEFAULT_CONCURRENCY_TARGET, WAKE_ONLY_CONCURRENCY, can_scale_to_zero, \
    cold_start_limit_seconds, concurrency_target, needs_interceptor, routed_through_interceptor, scaling_warnings
from planning.scheduling import CPU_POOL_AFFINITY
from planning.workloads import CPU_POOL, HTTP_ADD_ON
from tests import conformance, helm_render
from tests.conftest import needs_charts, CATALOG, THREE_MODELS, needs_reference, obj, parse, plan_for, release
from tools import checks

DEV = "nim-llm-llama3-8b-instruct"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
ROUTE = "kubernetes:http.keda.sh/v1beta1:InterceptorRoute"
SERVICE = "kubernetes:core/v1:Service"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
WARM = 'nim_models=[{"name": "meta/llama3-8b-instruct", "min_replicas": 1}]'
MONITORING_OFF = ("monitoring=false", 'nim_models=[{"name": "meta/llama3-8b-instruct", "min_replicas": 0}, '
                                      '{"name": "meta/llama-3.2-1b-instruct", "min_replicas": 2, '
                                      '"target_requests_running": 12}]')


def spec(plan, kind, name):
    return obj(plan, kind, name).inputs["spec"]


def triggers(plan, name=DEV) -> dict[str, dict]:
    return {t["name"]: t for t in spec(plan, SCALED_OBJECT, name)["triggers"]}


# ------------------------------------------------------------------------------------------ planning (pure)


def test_which_models_can_be_at_zero_and_which_go_through_the_interceptor():
    zero, warm = parse(nim_models='[{"name": "meta/llama3-8b-instruct", "min_replicas": 0}, '
                                  '"meta/llama-3.2-1b-instruct"]').models
    assert (can_scale_to_zero(zero), can_scale_to_zero(warm)) == (True, False)
    assert (routed_through_interceptor(zero, True), routed_through_interceptor(warm, True)) == (True, False)
    assert routed_through_interceptor(warm, False)  # without monitoring, requests are the only signal
    assert needs_interceptor([zero, warm], True) and needs_interceptor([warm], False)
    assert not needs_interceptor([warm], True)


def test_concurrency_targets():
    assert concurrency_target(8, True) == concurrency_target(8, False) == 8
    assert concurrency_target(None, False) == DEFAULT_CONCURRENCY_TARGET == 25
    assert concurrency_target(None, True) == WAKE_ONLY_CONCURRENCY == 2**31 - 1  # the route's int32 maximum


@pytest.mark.parametrize("model, minutes", [("meta/llama3-8b-instruct", 22), ("meta/llama-3.2-1b-instruct", 21),
                                            ("meta/llama-3.1-70b-instruct", 31)])
def test_cold_start_limit_grows_with_the_weights(model, minutes):
    # 5 min GPU node + 10 min image + cache at 500 MiB/s + 5 min NIM start, in whole minutes
    cache = CATALOG.models[model].cache_gib
    assert cold_start_limit_seconds(cache) == minutes * 60
    assert minutes * 60 >= 20 * 60 + cache * 1024 / 500


# ---------------------------------------------------------------------------------------- KEDA and the add-on


def test_keda_and_the_http_add_on(dev_plan):
    ns = obj(dev_plan, "kubernetes:core/v1:Namespace", "keda").inputs["metadata"]
    assert ns["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    keda, add_on = release(dev_plan, "keda"), release(dev_plan, "keda-add-ons-http")
    for r, pin in ((keda, versions.KEDA), (add_on, versions.KEDA_HTTP_ADD_ON)):
        assert (r.inputs["chart"], r.inputs["version"], r.inputs["namespace"]) == (pin.name, pin.version, "keda")
        assert r.inputs["repositoryOpts"]["repo"] == "https://kedacore.github.io/charts"
        assert r.inputs["values"]["crds"] == {"install": True}
        assert dev_plan.depends_on(r, dev_plan.one("kubernetes:karpenter.sh/v1:NodePool",
                                                   "nim-on-eks-dev-karpenter-cpu-pool"))
    assert dev_plan.depends_on(add_on, keda)  # its chart holds a ScaledObject: KEDA's CRDs and webhook first
    values = keda.inputs["values"]
    assert values["affinity"] == CPU_POOL_AFFINITY
    assert values["resources"]["operator"] == {"requests": {"cpu": "100m", "memory": "100Mi"}}
    values = add_on.inputs["values"]
    assert values["operator"] == {"replicas": 0}
    assert values["interceptor"]["proxy"] == {"port": comp.PROXY_PORT} and comp.PROXY_PORT == 8000
    assert values["interceptor"]["replicas"] == {"min": 2}
    assert values["interceptor"]["affinity"] == values["scaler"]["affinity"] == CPU_POOL_AFFINITY
    # streams through an interceptor that shuts down are not cut before a NIM pod's own grace would end them
    assert values["interceptor"]["terminationGracePeriodSeconds"] == 180
    assert values["interceptor"]["drainTimeout"] == "170s"


def test_no_add_on_when_every_model_is_warm_and_monitored():
    plan = plan_for(*THREE_MODELS)
    assert [r.inputs["chart"] for r in plan.of_type("kubernetes:helm.sh/v3:Release")
            if r.inputs["namespace"] == "keda"] == ["keda"]
    assert plan.of_type(ROUTE) == [] and len(plan.of_type(SCALED_OBJECT)) == 3


def test_the_pool_table_lists_every_keda_pod():
    assert {n: (w.replicas, w.when) for n, w in CPU_POOL.items() if n.startswith("keda")} == {
        "keda-operator": (1, None), "keda-operator-metrics-apiserver": (1, None), "keda-admission-webhooks": (1, None),
        "keda-add-ons-http-interceptor": (2, HTTP_ADD_ON), "keda-add-ons-http-external-scaler": (1, HTTP_ADD_ON)}


@pytest.mark.parametrize("values, expected", [
    ({"interceptor": {"directPodRouting": False}}, "interceptor.directPodRouting"),
    ({"interceptor": {"coldStart": {"maxPendingRequests": 10}}}, "interceptor.coldStart"),
    ({"interceptor": {"tls": {"caDirs": ["/x"]}}}, "interceptor.tls.caDirs"),
])
@needs_reference
def test_values_only_the_unreleased_chart_has_are_refused(dev_plan, values, expected):
    """../shared/reference holds kedacore/charts main, ahead of the 0.15.0 release: its values.yaml alone would
    accept these keys, which a real install ignores."""
    add_on = release(dev_plan, "keda-add-ons-http")
    assert conformance.release_values_errors(add_on, "keda-add-ons-http", "0.15.0") == []
    planted = type(add_on)(**{**add_on.__dict__, "inputs": {**add_on.inputs, "values": values}})
    [problem] = conformance.release_values_errors(planted, "keda-add-ons-http", "0.15.0")
    assert problem.endswith(f"{expected}: only in the reference's unreleased chart, not in the released one")


# ---------------------------------------------------------------------- the charts, rendered as installed



@pytest.fixture(scope="module")
def rendered(dev_plan, helm) -> dict[str, list[dict]]:
    """Chart name -> the manifests `helm template` renders for the dev plan's release of it."""
    found = {}
    for r, chart, version in conformance.helm_releases(dev_plan):
        if chart not in ("keda", "keda-add-ons-http", "kube-prometheus-stack"):
            continue
        folder, missing = helm_render.without_missing_dependencies(helm_render.chart_folder(chart, version))
        off = [c for name, c in helm_render.dependency_conditions(helm_render.chart_folder(chart, version)).items()
               if name in missing and c]
        values = helm_render.switched_off(helm_render.release_values(r)[0], off)
        found[chart] = helm_render.render(helm, folder, name=r.inputs["name"], namespace=r.inputs["namespace"],
                                          values=values, kube_version=versions.DEFAULT_EKS_VERSION)
    return found


def kinds(manifests, kind) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in manifests if m.get("kind") == kind}


@needs_charts
def test_rendered_pods_request_what_the_pool_table_says(rendered):
    deployments = {**kinds(rendered["keda"], "Deployment"), **kinds(rendered["keda-add-ons-http"], "Deployment")}
    keda_pool = {n: w for n, w in CPU_POOL.items() if n.startswith("keda")}
    assert set(deployments) == set(keda_pool)  # every KEDA pod is in the table, and no other KEDA entry is
    interceptor_scaler = kinds(rendered["keda-add-ons-http"], "ScaledObject")["keda-add-ons-http-interceptor"]
    for name, w in keda_pool.items():
        d = deployments[name]
        # the interceptor's Deployment has no replicas: its own ScaledObject keeps at least `min`
        replicas = d["spec"].get("replicas", interceptor_scaler["spec"]["minReplicaCount"])
        [c] = d["spec"]["template"]["spec"]["containers"]
        assert (replicas, c["resources"]["requests"]) == (w.replicas, {"cpu": f"{w.cpu_m}m",
                                                                       "memory": f"{w.memory_mib}Mi"}), name
        assert d["spec"]["template"]["spec"]["affinity"] == CPU_POOL_AFFINITY, name


@needs_charts
def test_rendered_pods_meet_the_restricted_pod_security_standard(rendered):
    """What `pod-security.kubernetes.io/enforce: restricted` on namespace keda admits (Pod Security Standards)."""
    for chart in ("keda", "keda-add-ons-http"):
        for name, d in kinds(rendered[chart], "Deployment").items():
            pod = d["spec"]["template"]["spec"]
            pod_sc = pod.get("securityContext") or {}
            assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), name
            assert all(set(v) - {"name"} <= {"secret", "emptyDir", "configMap", "projected"}
                       for v in pod.get("volumes") or []), name
            for c in pod["containers"] + pod.get("initContainers", []):
                sc = c.get("securityContext") or {}
                assert sc.get("allowPrivilegeEscalation") is False and not sc.get("privileged"), (name, c["name"])
                assert sc.get("capabilities", {}).get("drop") == ["ALL"], (name, c["name"])
                assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, (name, c["name"])
                seccomp = sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}
                assert seccomp.get("type") in ("RuntimeDefault", "Localhost"), (name, c["name"])


@needs_charts
def test_the_api_server_reaches_keda_on_ports_the_reachability_check_covers(rendered):
    """The external metrics APIService and the admission webhook are called by the control plane on the pods' own
    ports: those must be among the ports tools/checks.py proves reachable."""
    services = kinds(rendered["keda"], "Service")
    deployments = kinds(rendered["keda"], "Deployment")

    def pod_port(service: str, port: int | None) -> int:
        svc = services[service]
        [sp] = [p for p in svc["spec"]["ports"] if port is None or p["port"] == port]
        target = sp["targetPort"]
        [d] = [d for d in deployments.values()
               if svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        if isinstance(target, str):
            [target] = [p["containerPort"] for c in d["spec"]["template"]["spec"]["containers"]
                        for p in c.get("ports", []) if p.get("name") == target]
        return target

    [api] = kinds(rendered["keda"], "APIService").values()
    [hook] = kinds(rendered["keda"], "ValidatingWebhookConfiguration").values()
    ports = {pod_port(api["spec"]["service"]["name"], api["spec"]["service"].get("port", 443))}
    ports |= {pod_port(w["clientConfig"]["service"]["name"], w["clientConfig"]["service"].get("port", 443))
              for w in hook["webhooks"]}
    assert ports == {6443, 9443} and ports <= set(checks.WEBHOOK_PORTS)


@needs_charts
def test_the_addresses_models_use_are_the_rendered_services(rendered, dev_plan):
    add_on = kinds(rendered["keda-add-ons-http"], "Service")
    proxy = add_on[comp.INTERCEPTOR_SERVICE]
    assert [p["port"] for p in proxy["spec"]["ports"]] == [comp.PROXY_PORT]
    assert comp.interceptor_host() == f"{comp.INTERCEPTOR_SERVICE}.keda.svc.cluster.local"
    scaler = add_on[comp.SCALER_SERVICE]
    assert comp.scaler_address() == f"{comp.SCALER_SERVICE}.keda:{comp.SCALER_PORT}"
    assert {"name": "grpc", "port": comp.SCALER_PORT, "targetPort": "grpc"} in scaler["spec"]["ports"]
    # the Prometheus the triggers query: kube-prometheus-stack's Service, by the name and port its chart renders
    host = urlparse(triggers(dev_plan)["kv-cache"]["metadata"]["serverAddress"])
    assert f"{host.scheme}://{host.hostname}" == prometheus_url() and host.port == PROMETHEUS_PORT == 9090
    service = kinds(rendered["kube-prometheus-stack"], "Service")[host.hostname.split(".")[0]]
    assert service["metadata"]["namespace"] == host.hostname.split(".")[1]
    assert any(p["port"] == PROMETHEUS_PORT and p.get("name") == "http-web" for p in service["spec"]["ports"])


# ------------------------------------------------------------------------------------------ each model


def test_a_model_at_zero(dev_plan):
    """The dev model (min_replicas 0): KEDA takes it to zero after the idle time, the interceptor wakes it."""
    so = obj(dev_plan, SCALED_OBJECT, DEV).inputs
    s = so["spec"]
    assert s["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": DEV}
    assert (s["minReplicaCount"], s["maxReplicaCount"]) == (0, 5)
    assert s["cooldownPeriod"] == s["initialCooldownPeriod"] == 20 * 60  # scale_to_zero_idle_minutes
    assert s["advanced"]["restoreToOriginalReplicaCount"] is False
    hpa = s["advanced"]["horizontalPodAutoscalerConfig"]
    assert hpa["name"] == DEV  # the old HPA's name: KEDA takes it over on an upgraded stack
    assert so["metadata"]["annotations"] == {"scaledobject.keda.sh/transfer-hpa-ownership": "true"}
    assert hpa["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
        "scaleDown": {"stabilizationWindowSeconds": 300,
                      "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]}}
    found = triggers(dev_plan)
    assert list(found) == ["interceptor", "kv-cache"]
    assert found["interceptor"] == {"type": "external-push", "name": "interceptor", "metadata": {
        "scalerAddress": "keda-add-ons-http-external-scaler.keda:9090", "interceptorRoute": DEV}}
    kv = found["kv-cache"]
    assert (kv["type"], kv["metricType"]) == ("prometheus", "AverageValue")
    # NVIDIA's NIM Operator samples: gpu_cache_usage_perc at 0.5, here summed over the model's replicas (one series)
    assert kv["metadata"] == {
        "serverAddress": "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
        "query": f'sum(gpu_cache_usage_perc{{namespace="nim",service="{DEV}"}})',
        "threshold": "0.5", "activationThreshold": "0.5", "ignoreNullValues": "true"}
    assert dev_plan.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler") == []  # KEDA makes the HPA


def test_the_url_of_a_model_at_zero_goes_through_the_interceptor(dev_plan):
    url = urlparse(dev_plan.outputs["nim_models"]["meta/llama3-8b-instruct"]["url"])
    assert (url.scheme, url.port, url.path) == ("http", comp.PROXY_PORT, "/v1")
    name, namespace = url.hostname.split(".")[:2]
    alias = obj(dev_plan, SERVICE, name).inputs
    assert alias["metadata"]["namespace"] == namespace == "nim"
    assert alias["spec"] == {"type": "ExternalName", "externalName": comp.interceptor_host()}
    # the Host a client sends (the name it dialled) is one the route matches
    route = spec(dev_plan, ROUTE, DEV)
    assert url.hostname in route["rules"][0]["hosts"]
    assert {f"{name}.nim", name} <= set(route["rules"][0]["hosts"])  # short names, from inside the namespace
    # ... and the same host and port are where the gateway sends the model's requests
    backend = obj(dev_plan, "kubernetes:gateway.envoyproxy.io/v1alpha1:Backend", "nim-llm-llama3-8b-instruct")
    assert backend.inputs["spec"]["endpoints"] == [{"fqdn": {"hostname": url.hostname, "port": url.port}}]


def test_the_route_forwards_to_the_clusterip_service_once_a_replica_is_ready(dev_plan):
    route = spec(dev_plan, ROUTE, DEV)
    target = obj(dev_plan, SERVICE, route["target"]["service"]).inputs["spec"]
    # not the headless Service: it publishes pods that are not Ready, which the interceptor would take as ready
    assert target.get("clusterIP") != "None" and not target.get("publishNotReadyAddresses")
    assert target["type"] == "ClusterIP"
    assert route["target"]["port"] == target["ports"][0]["port"] == 8000
    assert target["selector"] == spec(dev_plan, STATEFULSET, DEV)["template"]["metadata"]["labels"]
    # held for at most the model's cold-start limit, then 504; a long non-streamed answer is never cut
    assert route["timeouts"] == {"readiness": f"{22 * 60}s", "responseHeader": "0s"}
    assert "request" not in route["timeouts"]  # the chart's default: no limit on a whole (streamed) request
    # monitoring on: KV-cache use decides the replica count, requests only wake the model
    assert route["scalingMetric"] == {"concurrency": {"targetValue": WAKE_ONLY_CONCURRENCY}}


def test_listing_models_never_wakes_a_model_at_zero(dev_plan):
    models = obj(dev_plan, ROUTE, f"{DEV}-models").inputs["spec"]
    assert models["rules"] == [{"hosts": spec(dev_plan, ROUTE, DEV)["rules"][0]["hosts"],
                                "paths": [{"value": "/v1/models"}]}]
    response = models["coldStart"]["placeholder"]["response"]
    assert (response["statusCode"], response["headers"]) == (200, {"Content-Type": "application/json"})
    assert [m["id"] for m in json.loads(response["body"])["data"]] == ["meta/llama3-8b-instruct"]
    # no ScaledObject reads it: its requests wake nothing
    assert all(t["metadata"].get("interceptorRoute") != f"{DEV}-models"
               for so in dev_plan.of_type(SCALED_OBJECT) for t in so.inputs["spec"]["triggers"])


def test_order_on_up(dev_plan):
    so, sts = obj(dev_plan, SCALED_OBJECT, DEV), obj(dev_plan, STATEFULSET, DEV)
    route, alias = obj(dev_plan, ROUTE, DEV), obj(dev_plan, SERVICE, f"{DEV}-proxy")
    for first in (sts, route, obj(dev_plan, ROUTE, f"{DEV}-models"), release(dev_plan, "keda"),
                  release(dev_plan, "keda-add-ons-http"), release(dev_plan, "kube-prometheus-stack")):
        assert dev_plan.depends_on(so, first), first.name
    assert dev_plan.depends_on(route, obj(dev_plan, SERVICE, DEV))
    assert dev_plan.depends_on(alias, so) and dev_plan.depends_on(alias, route)  # the URL works once it exists


def test_an_always_warm_model_is_reached_directly_and_scales_on_nims_metrics():
    plan = plan_for(WARM)
    s = spec(plan, SCALED_OBJECT, DEV)
    assert (s["minReplicaCount"], s["maxReplicaCount"]) == (1, 5)
    # cooldown and polling apply only to the step to and from zero (KEDA 2.20 warns when set without it)
    assert not {"cooldownPeriod", "initialCooldownPeriod", "pollingInterval"} & set(s)
    assert [t["name"] for t in s["triggers"]] == ["kv-cache"]
    assert plan.outputs["nim_models"]["meta/llama3-8b-instruct"]["url"] == \
        f"http://{DEV}.nim.svc.cluster.local:8000/v1"
    # sorted: the mock runtime registers resources in the order their inputs resolve, which may vary
    assert plan.of_type(ROUTE) == [] and sorted(r.inputs["metadata"]["name"] for r in plan.of_type(SERVICE)
                                                if r.inputs["metadata"]["namespace"] == "nim") == [DEV, f"{DEV}-sts"]


def test_target_requests_running_adds_an_in_flight_trigger():
    plan = plan_for('nim_models=[{"name": "meta/llama3-8b-instruct", "min_replicas": 0, "idle_minutes": 45, '
                    '"target_requests_running": 8, "target_kv_cache_percent": 70}]')
    found = triggers(plan)
    assert list(found) == ["interceptor", "kv-cache", "requests-running"]
    assert (found["kv-cache"]["metadata"]["threshold"], found["kv-cache"]["metadata"]["activationThreshold"]) == \
        ("0.7", "0.7")
    assert found["requests-running"]["metadata"]["query"] == \
        f'sum(num_requests_running{{namespace="nim",service="{DEV}"}})'
    assert found["requests-running"]["metadata"]["threshold"] == "8"
    assert "activationThreshold" not in found["requests-running"]["metadata"]  # any running request keeps it awake
    assert spec(plan, ROUTE, DEV)["scalingMetric"] == {"concurrency": {"targetValue": 8}}
    assert spec(plan, SCALED_OBJECT, DEV)["cooldownPeriod"] == 45 * 60


def test_without_monitoring_every_model_scales_on_requests_through_the_interceptor():
    plan = plan_for(*MONITORING_OFF)
    assert plan.error is None, plan.error
    for name, (low, target) in {DEV: (0, DEFAULT_CONCURRENCY_TARGET), "nim-llm-llama-3-2-1b-instruct": (2, 12)}.items():
        s = spec(plan, SCALED_OBJECT, name)
        assert s["minReplicaCount"] == low
        assert s["triggers"] == [comp.interceptor_trigger(name)]  # no Prometheus to ask: no trigger that would fail
        assert spec(plan, ROUTE, name)["scalingMetric"] == {"concurrency": {"targetValue": target}}
        model = next(m for m, v in plan.outputs["nim_models"].items() if v["kubernetes_name"] == name)
        assert urlparse(plan.outputs["nim_models"][model]["url"]).hostname == f"{name}-proxy.nim.svc.cluster.local"
    assert plan.of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor") == []
    [warning] = [w for w in plan.warnings if w.startswith("monitoring is off")]
    assert warning == ("monitoring is off: meta/llama3-8b-instruct, meta/llama-3.2-1b-instruct scale on in-flight "
                       "requests through the KEDA HTTP add-on's interceptor (target_requests_running per replica, "
                       "default 25), not on NIM's KV-cache use, and every model's URL goes through it")
    assert scaling_warnings(parse().models, True) == []


def test_every_scaled_object_and_route_matches_its_crd():
    """Structural schema and CEL rules (tests/conformance.py), for each shape the program makes."""
    for overrides in ((), (WARM,), MONITORING_OFF):
        plan = plan_for(*overrides)
        for r in plan.of_type(SCALED_OBJECT) + plan.of_type(ROUTE):
            assert conformance.validate_custom_resource(conformance.manifest(r)) == [], r.name


@needs_reference
def test_the_crd_gate_catches_a_route_naming_its_port_twice(dev_plan):
    m = copy.deepcopy(conformance.manifest(obj(dev_plan, ROUTE, DEV)))  # the session's plan stays as it is
    m["spec"]["target"]["portName"] = "http-openai"
    assert conformance.validate_custom_resource(m) == [
        f"InterceptorRoute/{DEV}: spec/target: exactly one of 'port' or 'portName' must be set"]


def test_names_fit_kubernetes_limits():
    """KEDA refuses a ScaledObject (and the HPA it names) over 63 characters; a Service name is a DNS label."""
    long_name = max(CATALOG.models, key=lambda n: len(n.rsplit("/", 1)[-1]))
    plan = plan_for(f'nim_models=[{{"name": "{long_name}", "min_replicas": 0}}]')
    for r in plan.of_type(SCALED_OBJECT) + plan.of_type(ROUTE) + plan.of_type(SERVICE):
        assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", r.inputs["metadata"]["name"]), r.inputs["metadata"]


@needs_charts
def test_the_images_whose_platforms_are_recorded_are_the_rendered_ones(rendered):
    images = {c["image"] for chart in ("keda", "keda-add-ons-http")
              for d in kinds(rendered[chart], "Deployment").values() for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == set(versions.KEDA_IMAGE_PLATFORMS)
    assert all("linux/arm64" in p and "linux/amd64" in p for p in versions.KEDA_IMAGE_PLATFORMS.values())
