"""The authenticated endpoint (issue 14): routes to every model, API keys that never show, token limits, the proxies'
pods as EG will run them, and the charts' own renders agreeing with what the program assumes of them."""

from __future__ import annotations

import json
import shlex
from urllib.parse import urlparse

import pytest

from planning import gateway as gw
from planning import versions
from planning.workloads import CPU_POOL, EXTPROC_SIDECAR, SHUTDOWN_MANAGER
from tests.conftest import needs_charts, render_release, THREE_MODELS, plan_for, problems
from tests.pod_security import violations

GATEWAY = "nim-on-eks:index:Gateway"
CR = "kubernetes:{}"
ROUTE = "kubernetes:aigateway.envoyproxy.io/v1beta1:AIGatewayRoute"
AI_BACKEND = "kubernetes:aigateway.envoyproxy.io/v1beta1:AIServiceBackend"
BACKEND = "kubernetes:gateway.envoyproxy.io/v1alpha1:Backend"
SECURITY = "kubernetes:gateway.envoyproxy.io/v1alpha1:SecurityPolicy"
LIMITS = "kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy"
PROXY = "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy"
GATEWAY_OBJ = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
RELEASE = "kubernetes:helm.sh/v3:Release"
CERT = "arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
LIMITED = 'api_keys=["ci", {"name": "team-a", "tokens_per_minute": 20000}, {"name": "batch", "rotation": 2}]'


def spec(plan, type_, name=None):
    return plan.one(type_, name).inputs["spec"]


def routed(plan) -> dict[str, tuple[str, int, str]]:
    """served model name -> (backend host, port, request timeout) as the route, AIServiceBackends and Backends say."""
    ai = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in plan.of_type(AI_BACKEND)}
    eg = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in plan.of_type(BACKEND)}
    out = {}
    for rule in spec(plan, ROUTE)["rules"]:
        [match] = rule["matches"]
        [header] = match["headers"]
        assert header["name"] == "x-ai-eg-model" and header["type"] == "Exact"
        [ref] = rule["backendRefs"]
        backend_ref = ai[ref["name"]]["backendRef"]
        assert (backend_ref["kind"], backend_ref["group"]) == ("Backend", "gateway.envoyproxy.io")
        [endpoint] = eg[backend_ref["name"]]["endpoints"]
        out[header["value"]] = (endpoint["fqdn"]["hostname"], endpoint["fqdn"]["port"], rule["timeouts"]["request"])
    return out


# ------------------------------------------------------------------------------------------------- routing


@pytest.mark.parametrize("overrides", [(), THREE_MODELS])
def test_every_model_is_routed_by_its_name_to_where_it_listens(overrides):
    """Each model's rule matches the name clients send as `model` and ends at the host and port of its own URL
    (the interceptor's for a model at zero, which wakes it)."""
    plan = plan_for(*overrides)
    routes = routed(plan)
    models = plan.outputs["nim_models"]
    assert set(routes) == set(models)
    for name, model in models.items():
        url = urlparse(model["url"])
        assert routes[name][:2] == (url.hostname, url.port), name


def test_a_model_at_zero_may_take_its_cold_start_on_top_of_an_answer():
    warm = plan_for('nim_models=[{"name": "meta/llama3-8b-instruct", "min_replicas": 1}]')
    cold = plan_for('nim_models=[{"name": "meta/llama3-8b-instruct", "min_replicas": 0}]')
    [(_, _, warm_timeout)] = routed(warm).values()
    [(host, _, cold_timeout)] = routed(cold).values()
    assert warm_timeout == f"{gw.ANSWER_SECONDS}s"
    assert "-proxy." in host and int(cold_timeout[:-1]) > gw.ANSWER_SECONDS + 5 * 60


def test_the_token_costs_the_limits_read_are_the_ones_the_route_records(dev_plan):
    [cost] = spec(dev_plan, ROUTE)["llmRequestCosts"]
    assert cost == {"metadataKey": gw.TOTAL_TOKENS_KEY, "type": "TotalToken"}
    plan = plan_for(LIMITED)
    [rule] = spec(plan, LIMITS)["rateLimit"]["global"]["rules"]
    assert rule["cost"]["response"]["metadata"] == {"namespace": gw.AI_METADATA_NAMESPACE, "key": cost["metadataKey"]}
    assert rule["cost"]["request"] == {"from": "Number", "number": 0}  # checked on arrival, charged at the end


# ------------------------------------------------------------------------------------------------- API keys


def test_every_request_needs_a_key_and_the_key_names_its_client(dev_plan):
    policy = spec(dev_plan, SECURITY)
    assert policy["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gw.GATEWAY}]
    auth = policy["apiKeyAuth"]
    # OpenAI clients send `Authorization: Bearer <key>` (Envoy strips the prefix); x-api-key as well
    assert auth["extractFrom"] == [{"headers": ["authorization", "x-api-key"]}]
    assert auth["sanitize"] is True  # NIM never sees the key
    [ref] = auth["credentialRefs"]
    credentials = dev_plan.one("kubernetes:core/v1:Secret", "nim-on-eks-dev-gateway-api-keys")
    assert (ref["name"], credentials.inputs["metadata"]["namespace"]) == (
        credentials.inputs["metadata"]["name"], dev_plan.one(SECURITY).inputs["metadata"]["namespace"])
    assert set(credentials.revealed["stringData"]) == {"default", gw.OPEN_WEBUI_CLIENT}
    # the policy is created after the Secret it reads
    assert credentials.urn in dev_plan.one(SECURITY).dependencies


def test_keys_are_generated_kept_in_secrets_manager_and_never_shown():
    plan = plan_for(LIMITED)
    passwords = {r.name.removeprefix("nim-on-eks-dev-gateway-key-"): r for r in
                 plan.of_type("random:index/randomPassword:RandomPassword") if "-gateway-key-" in r.name}
    assert set(passwords) == {"ci", "team-a", "batch", gw.OPEN_WEBUI_CLIENT}
    assert all(p.inputs["length"] == 48 and p.inputs["special"] is False for p in passwords.values())
    keys = {n: p.outputs["result"] for n, p in passwords.items()}
    version = plan.one("aws:secretsmanager/secretVersion:SecretVersion", "nim-on-eks-dev-gateway-api-keys")
    assert version.inputs["secretString"] == "[secret]"
    # people read the keys they were given, not Open WebUI's
    assert json.loads(version.revealed["secretString"]) == {n: k for n, k in keys.items() if n != gw.OPEN_WEBUI_CLIENT}
    secret = plan.one("aws:secretsmanager/secret:Secret", "nim-on-eks-dev-gateway-api-keys")
    assert secret.inputs["recoveryWindowInDays"] == 0 and secret.inputs["namePrefix"] == "nim-on-eks-dev-api-keys-"
    credentials = plan.one("kubernetes:core/v1:Secret", "nim-on-eks-dev-gateway-api-keys")
    assert credentials.inputs["stringData"] == "[secret]" and credentials.revealed["stringData"] == keys
    # no key anywhere in the plan as `make plan` writes it, nor in the outputs
    text = json.dumps(plan.as_json())
    assert not [n for n, k in keys.items() if k in text]
    assert plan.config["nim-on-eks:ngc_api_key"] not in text  # nor the NGC key (tests/conftest.py's stand-in)
    assert plan.outputs["api_keys_command"] == (
        f"aws secretsmanager get-secret-value --region us-west-2 --secret-id {plan.outputs['api_keys_secret_name']} "
        "--query SecretString --output text")


def test_a_new_rotation_number_replaces_that_key_only():
    before = plan_for(LIMITED)
    after = plan_for(LIMITED.replace('"rotation": 2', '"rotation": 3'))

    def keepers(plan):
        return {r.name: r.inputs.get("keepers") for r in plan.of_type("random:index/randomPassword:RandomPassword")}
    changed = {n for n in keepers(before) if keepers(before)[n] != keepers(after)[n]}
    assert changed == {"nim-on-eks-dev-gateway-key-batch"}  # a changed keeper makes pulumi_random a new password


@pytest.mark.parametrize(("api_keys", "message"), [
    ('[{"name": "a", "tokens_per_minute": 0}]', "tokens_per_minute '0'"),
    ('["a", "a"]', "a name is given twice"),
    ('["open-webui"]', "not open-webui"),
    ('["Team A"]', "1-32 lowercase letters"),
    ('[]', "allowed: a JSON list of key names"),
    ('[{"name": "a", "limit": 5}]', "allowed: a JSON list of key names"),
])
def test_bad_keys_are_refused_naming_the_key(api_keys, message):
    [problem] = problems(api_keys=api_keys)
    assert problem.startswith("api_keys: ") and message in problem, problem


# ------------------------------------------------------------------------------------------------- token limits


def test_only_limited_keys_are_limited_and_only_then_is_there_a_rate_limit_service(dev_plan):
    assert not dev_plan.of_type(LIMITS)
    assert "rateLimit" not in dev_plan.one(RELEASE, "nim-on-eks-dev-gateway-envoy-gateway").inputs["values"][
        "config"]["envoyGateway"]
    assert not [r for r in dev_plan.of_type("kubernetes:apps/v1:Deployment") if r.name.endswith("-redis")]
    plan = plan_for(LIMITED)
    [rule] = spec(plan, LIMITS)["rateLimit"]["global"]["rules"]
    assert rule["clientSelectors"] == [{"headers": [{"name": gw.CLIENT_ID_HEADER, "type": "Exact", "value": "team-a"}]}]
    assert rule["limit"] == {"requests": 20000, "unit": "Minute"}
    # one counter per key across every model: unshared, a Gateway-wide rule counts each route (model) on its own
    assert rule["shared"] is True
    # the header the limit selects on is the one the API key filter writes the client's name to
    assert spec(plan, SECURITY)["apiKeyAuth"]["forwardClientIDHeader"] == gw.CLIENT_ID_HEADER
    config = plan.one(RELEASE, "nim-on-eks-dev-gateway-envoy-gateway").inputs["values"]["config"]["envoyGateway"]
    service = plan.one("kubernetes:core/v1:Service", "nim-on-eks-dev-gateway-redis").inputs
    host, port = config["rateLimit"]["backend"]["redis"]["url"].rsplit(":", 1)
    assert host == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    assert int(port) == service["spec"]["ports"][0]["port"] == gw.REDIS_PORT
    assert config["rateLimit"]["failClosed"] is False
    redis = plan.one("kubernetes:apps/v1:Deployment", "nim-on-eks-dev-gateway-redis").inputs["spec"]["template"]
    assert service["spec"]["selector"] == redis["metadata"]["labels"]
    assert violations("restricted", redis["spec"]) == []


# ------------------------------------------------------------------------------------------------- the proxies


def test_the_proxies_ask_what_the_cpu_pool_declares(dev_plan):
    """EG renders the proxy pods at run time: Envoy from EnvoyProxy, the external processor from GatewayConfig, and
    EG's shutdown manager at its default; together what CPU_POOL counts, on the CPU nodes, two of them."""
    deployment = spec(dev_plan, PROXY)["provider"]["kubernetes"]["envoyDeployment"]
    extproc = spec(dev_plan, "kubernetes:aigateway.envoyproxy.io/v1beta1:GatewayConfig")["extProc"]["kubernetes"]
    w = CPU_POOL["envoy-proxy"]
    assert deployment["replicas"] == w.replicas == 2
    assert deployment["container"]["resources"]["requests"] == {"cpu": f"{w.main.cpu_m}m",
                                                                "memory": f"{w.main.memory_mib}Mi"}
    assert extproc["resources"]["requests"] == {"cpu": f"{EXTPROC_SIDECAR.cpu_m}m",
                                                "memory": f"{EXTPROC_SIDECAR.memory_mib}Mi"}
    assert set(w.sidecars) == {EXTPROC_SIDECAR, SHUTDOWN_MANAGER}
    terms = deployment["pod"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["cpu"]
    assert deployment["pod"]["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert spec(dev_plan, PROXY)["provider"]["kubernetes"]["envoyPDB"] == {"minAvailable": 1}


def test_the_proxies_service_is_the_one_open_webui_calls(dev_plan):
    service = spec(dev_plan, PROXY)["provider"]["kubernetes"]["envoyService"]
    assert service["name"] == gw.SERVICE_NAME and service["type"] == "LoadBalancer"
    url = urlparse(gw.in_cluster_url(tls=False))
    assert url.hostname == f"{gw.SERVICE_NAME}.{gw.EG_NAMESPACE}.svc.cluster.local"
    [listener] = spec(dev_plan, GATEWAY_OBJ)["listeners"]
    assert url.port == listener["port"] == 80 and gw.proxy_container_port(tls=False) == 10080
    gateway = dev_plan.one(GATEWAY_OBJ)
    assert gateway.inputs["metadata"]["annotations"] == {"aigateway.envoyproxy.io/gateway-config": gw.GATEWAY}
    # the proxies run in EG's namespace, whose pods all meet restricted
    ns = dev_plan.one("kubernetes:core/v1:Namespace", "nim-on-eks-dev-gateway-envoy-gateway-system").inputs
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize(("overrides", "scheme", "port", "tls"), [
    ((), "internal", 80, False),
    (("public_endpoint=true",), "internet-facing", 80, False),
    (("public_endpoint=true", f"certificate_arn={CERT}"), "internet-facing", 443, True),
])
def test_the_proxies_get_the_nlb_the_endpoint_settings_ask_for(overrides, scheme, port, tls):
    """Internal by default; internet-facing with public_endpoint; TLS on 443 (and no plain port) with a certificate.
    The Service is the AWS Load Balancer Controller's (its class), the Gateway listens on the NLB's port, and the
    outputs say how to reach it."""
    plan = plan_for(*overrides)
    service = spec(plan, PROXY)["provider"]["kubernetes"]["envoyService"]
    annotations = service["annotations"]
    assert service["loadBalancerClass"] == "service.k8s.aws/nlb"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == scheme
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    assert (annotations.get("service.beta.kubernetes.io/aws-load-balancer-ssl-cert") == CERT) is tls
    [listener] = spec(plan, GATEWAY_OBJ)["listeners"]
    assert (listener["port"], listener["protocol"]) == (port, "HTTP")  # TLS ends at the NLB
    assert plan.outputs["gateway_url"].startswith("https://" if tls else "http://")
    assert plan.outputs["gateway_url_in_cluster"] == \
        f"http://nim-gateway.envoy-gateway-system.svc.cluster.local:{port}/v1"
    assert plan.outputs["gateway_hostname_command"].startswith(
        "kubectl -n envoy-gateway-system get service nim-gateway")
    # a shell command (the README evals it): its quotes keep the JSONPath one word
    assert shlex.split(plan.outputs["gateway_hostname_command"])[-2:] == [
        "-o", "jsonpath={.status.loadBalancer.ingress[0].hostname}"]
    assert ("public_endpoint is true without certificate_arn" in " ".join(plan.warnings)) is (
        scheme == "internet-facing" and not tls)


def test_a_request_may_wait_for_a_cold_start_through_the_nlb():
    """A model at zero sends no byte until it is up (~12 min for the 8B): the plain NLB listener's idle timeout is
    raised to the longest wait (its default 350 s would cut the connection); a TLS listener's cannot be (AWS), so the
    plan warns; Envoy keeps its side of the flow alive with TCP keepalives."""
    plan = plan_for('nim_models=[{"name": "meta/llama3-8b-instruct", "min_replicas": 0}]')
    longest = max(int(t[:-1]) for _, _, t in routed(plan).values())
    assert longest > 350
    annotations = spec(plan, PROXY)["provider"]["kubernetes"]["envoyService"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-listener-attributes.TCP-80"] == \
        f"tcp.idle_timeout.seconds={min(longest, 6000)}"
    keepalive = spec(plan, "kubernetes:gateway.envoyproxy.io/v1alpha1:ClientTrafficPolicy")["tcpKeepalive"]
    assert int(keepalive["idleTime"][:-1]) + int(keepalive["interval"][:-1]) < 350
    tls = plan_for('nim_models=[{"name": "meta/llama3-8b-instruct", "min_replicas": 0}]', f"certificate_arn={CERT}")
    assert not any("listener-attributes" in k for k in spec(tls, PROXY)["provider"]["kubernetes"]["envoyService"][
        "annotations"])
    assert any(w.startswith("certificate_arn: the NLB closes a TLS connection idle for 350 s") for w in tls.warnings)
    warm = plan_for('nim_models=[{"name": "meta/llama3-8b-instruct", "min_replicas": 1}]', f"certificate_arn={CERT}")
    assert not any(w.startswith("certificate_arn:") for w in warm.warnings)  # no cold start to wait for


def test_the_gateway_waits_for_its_controllers_and_goes_before_them(dev_plan):
    """CRDs and controllers first on `up`; on destroy the Gateway and routes go while EG still runs to delete the
    proxies and their Service (and the load balancer with it)."""
    releases = {r.name: r.urn for r in dev_plan.within(GATEWAY, type_=RELEASE)}
    crs = [r for r in dev_plan.within(GATEWAY) if r.type.startswith(("kubernetes:gateway.", "kubernetes:aigateway."))]
    assert len(crs) == 9
    for r in crs:
        assert set(releases.values()) <= set(r.dependencies), r.name
    gateway = dev_plan.one(GATEWAY_OBJ)
    for kind in ("GatewayClass", "EnvoyProxy", "GatewayConfig"):
        [dep] = [r for r in crs if r.type.endswith(f":{kind}")]
        assert dep.urn in gateway.dependencies, kind
    # the AI Gateway's controller after EG, as its install guide orders them (it watches EG's Backend kinds)
    assert releases["nim-on-eks-dev-gateway-envoy-gateway"] in dev_plan.one(
        RELEASE, "nim-on-eks-dev-gateway-ai-gateway").dependencies
    route = dev_plan.one(ROUTE)
    assert gateway.urn in route.dependencies and all(b.urn in route.dependencies for b in dev_plan.of_type(AI_BACKEND))


def test_without_the_gateway_there_is_none_of_it():
    plan = plan_for("gateway=false")
    assert not [r for r in plan.resources if r.type == GATEWAY or "-gateway-" in r.name]
    assert "api_keys_command" not in plan.outputs and "api_keys_secret_name" not in plan.outputs
    assert not [w for w in plan.outputs["cost_estimate"]["cpu_pool"]["workloads"] if "envoy" in w]


# ----------------------------------------------------------------------------- what the charts really render


@needs_charts
def test_eg_calls_the_ai_gateway_where_its_chart_puts_it(dev_plan, helm):
    """The extension manager's address in EG's config is the AI Gateway controller's Service as its chart renders it,
    and the images EG and the AI Gateway start at run time are the ones planning/versions.py records."""
    ai = [m for m in render_release(dev_plan, helm, versions.AI_GATEWAY.name)[0] if isinstance(m, dict)]
    [service] = [m for m in ai if m["kind"] == "Service"]
    grpc = {p["name"]: p["port"] for p in service["spec"]["ports"]}["grpc"]
    config = dev_plan.one(RELEASE, "nim-on-eks-dev-gateway-envoy-gateway").inputs["values"]["config"]["envoyGateway"]
    fqdn = config["extensionManager"]["service"]["fqdn"]
    assert (fqdn["hostname"], fqdn["port"]) == (
        f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local", grpc)
    [controller] = [m for m in ai if m["kind"] == "Deployment"]
    args = controller["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--extProcImage={versions.EXTPROC_IMAGE}" in args
    assert f"--envoyGatewayNamespace={gw.EG_NAMESPACE}" in args
    [webhook] = [m for m in ai if m["kind"] == "MutatingWebhookConfiguration"]
    # the pod mutator adds the external processor to EG's proxy pods: those carry this label (gw.PROXY_LABELS)
    assert webhook["webhooks"][0]["objectSelector"]["matchLabels"].items() <= gw.PROXY_LABELS.items()
    eg = [m for m in render_release(dev_plan, helm, versions.ENVOY_GATEWAY.name)[0] if isinstance(m, dict)]
    [config_map] = [m for m in eg if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "envoy-gateway-config"]
    rendered = config_map["data"]["envoy-gateway.yaml"]
    assert versions.RATELIMIT_IMAGE in rendered  # the chart's rate limit image is the one recorded
    [eg_service] = [m for m in eg if m["kind"] == "Service" and m["metadata"]["name"] == "envoy-gateway"]
    assert gw.XDS_PORT in {p["port"] for p in eg_service["spec"]["ports"]}


@needs_charts
def test_the_proxies_are_ready_only_once_the_nlb_sees_them(dev_plan, helm):
    """The AWS Load Balancer Controller adds its readiness gate to pods of namespaces its pod webhook selects:
    EG's namespace (where the proxies run) carries the label it selects on, so a rollout or node replacement never
    leaves the NLB without a healthy target."""
    labels = dev_plan.one("kubernetes:core/v1:Namespace", "nim-on-eks-dev-gateway-envoy-gateway-system").inputs[
        "metadata"]["labels"]
    lbc = [m for m in render_release(dev_plan, helm, versions.AWS_LOAD_BALANCER_CONTROLLER.name)[0]
           if isinstance(m, dict)]
    [pod_webhook] = [w for m in lbc if m["kind"] == "MutatingWebhookConfiguration" for w in m["webhooks"]
                     if w["name"].startswith("mpod.")]
    selector = pod_webhook["namespaceSelector"]
    assert selector.get("matchLabels", {}).items() <= labels.items()
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] in ("In", "NotIn", "Exists", "DoesNotExist")
        present = expression["key"] in labels
        assert {"In": present and labels.get(expression["key"]) in expression.get("values", []),
                "NotIn": labels.get(expression["key"]) not in expression.get("values", []),
                "Exists": present, "DoesNotExist": not present}[expression["operator"]], expression
    assert pod_webhook["failurePolicy"] == "Ignore"  # a controller away never blocks a proxy pod
