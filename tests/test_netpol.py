"""Network policies: the evaluator (tools/netpol.py) on small cases, the reachability matrix of the dev plan's
NetworkPolicy objects against the declared flows (planning/flows.py), a planted mistake it catches, the labels and
ports the flows name against the pods really rendered, and the VPC CNI's enforcement switched on."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from components import nim as nim_component
from components.monitoring import PROMETHEUS_PORT
from planning import flows, versions
from planning import gateway as gw
from planning.endpoint import CERTIFICATE_ARN_EXAMPLE
from tests import conformance, helm_render
from tests.conftest import needs_charts, THREE_MODELS, plan_for
from tools import netpol
from tools.netpol import Endpoint, allowed

NP = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
GATEWAY_NAMESPACES = {gw.EG_NAMESPACE, gw.AI_NAMESPACE, gw.ROUTES_NAMESPACE}
# a key with a token limit: EG's rate limit service and Redis run
RATE_LIMITS = ('api_keys=[{"name": "team", "tokens_per_minute": 10000}]',)
TLS = (f"certificate_arn={CERTIFICATE_ARN_EXAMPLE}",)  # the Gateway listens on 443, the proxies on 10443


def pod(ns, **labels):
    return Endpoint(namespace=ns, labels=labels)


def ip(addr):
    return Endpoint(ip=addr)


def policy(ns, spec, name="p"):
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


DENY_IN = policy("a", {"podSelector": {}, "policyTypes": ["Ingress"]}, "deny")


# ------------------------------------------------------------------------------------ the evaluator, small cases

def test_no_policy_allows_everything():
    assert allowed([], pod("a", app="x"), pod("b", app="y"), 80)
    assert allowed([], pod("a"), ip("8.8.8.8/32"), 53, "UDP")


def test_default_deny_isolates_only_its_namespace_and_direction():
    assert not allowed([DENY_IN], pod("b"), pod("a", app="x"), 80)
    assert allowed([DENY_IN], pod("a", app="x"), pod("b"), 80)  # egress of a: not isolated
    assert allowed([DENY_IN], pod("b"), pod("c"), 80)


def test_policies_are_a_union_and_pod_selector_alone_means_own_namespace():
    allow = policy("a", {"podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Ingress"],
                         "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})
    ps = [DENY_IN, allow]
    assert allowed(ps, pod("a", role="client"), pod("a", app="x"), 80)
    assert not allowed(ps, pod("b", role="client"), pod("a", app="x"), 80)  # other namespace
    assert not allowed(ps, pod("a", role="client"), pod("a", app="z"), 80)  # pod not selected by the allow


def test_namespace_and_pod_selector_in_one_peer_is_and_in_two_peers_is_or():
    both = {"namespaceSelector": {"matchLabels": {netpol.NS_LABEL: "b"}},
            "podSelector": {"matchLabels": {"role": "client"}}}
    one = policy("a", {"podSelector": {}, "ingress": [{"from": [both]}]})
    assert allowed([one], pod("b", role="client"), pod("a"), 80)
    assert not allowed([one], pod("b", role="other"), pod("a"), 80)
    assert not allowed([one], pod("a", role="client"), pod("a"), 80)
    two = policy("a", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": both["namespaceSelector"]}, {"podSelector": both["podSelector"]}]}]})
    assert allowed([two], pod("b", role="other"), pod("a"), 80)  # any pod of namespace b
    assert allowed([two], pod("a", role="client"), pod("a"), 80)  # client pods of a itself
    assert not allowed([two], pod("c", role="client"), pod("a"), 80)


def test_namespace_labels_beyond_the_name():
    p = policy("a", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
        {"key": "team", "operator": "In", "values": ["ml"]}]}}]}]})
    assert allowed([p], pod("b"), pod("a"), 80, ns_labels={"b": {"team": "ml"}})
    assert not allowed([p], pod("b"), pod("a"), 80, ns_labels={"b": {"team": "web"}})


def test_ip_block_with_except_and_pods_never_match_it():
    p = policy("a", {"podSelector": {}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}]}]})
    assert allowed([p], ip("10.0.2.5/32"), pod("a"), 80)
    assert not allowed([p], ip("10.0.1.5/32"), pod("a"), 80)
    assert not allowed([p], ip("10.1.0.5/32"), pod("a"), 80)
    assert not allowed([p], pod("b"), pod("a"), 80)


def test_ports_protocol_end_port_and_named_ports():
    p = policy("a", {"podSelector": {}, "ingress": [{"ports": [
        {"port": 53, "protocol": "UDP"}, {"port": 8000, "endPort": 8010}, {"port": "http"}]}]})
    assert allowed([p], pod("b"), pod("a"), 53, "UDP")
    assert not allowed([p], pod("b"), pod("a"), 53, "TCP")  # protocol defaults to TCP, and must match
    assert allowed([p], pod("b"), pod("a"), 8010) and not allowed([p], pod("b"), pod("a"), 8011)
    web = Endpoint(namespace="a", named_ports={"http": 8080})
    assert allowed([p], pod("b"), web, 8080) and not allowed([p], pod("b"), web, 9090)


def test_empty_rules_and_absent_policy_types():
    allow_all = policy("a", {"podSelector": {}, "ingress": [{}]})  # one empty rule: everything
    assert allowed([allow_all], ip("1.2.3.4/32"), pod("a"), 1)
    deny = policy("a", {"podSelector": {}, "ingress": []})  # no rule: nothing (Ingress implied)
    assert not allowed([deny], pod("a"), pod("a"), 1)
    egress = policy("a", {"podSelector": {}, "egress": [{"ports": [{"port": 443}]}]})  # Egress from `egress`
    assert allowed([egress], pod("a"), ip("1.2.3.4/32"), 443)
    assert not allowed([egress], pod("a"), ip("1.2.3.4/32"), 80)
    # without policyTypes Ingress is always implied: the same policy isolates ingress, with no ingress rule
    assert not allowed([egress], pod("b"), pod("a"), 80)


def test_unknown_policy_type_is_refused():
    with pytest.raises(ValueError, match="Ingres"):
        allowed([policy("a", {"podSelector": {}, "policyTypes": ["Ingres"]})], pod("b"), pod("a"), 80)


def test_both_sides_must_allow():
    out = policy("a", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 80}]}]})
    deny_b = policy("b", {"podSelector": {}, "policyTypes": ["Ingress"]})
    v = allowed([out, deny_b], pod("a"), pod("b"), 80)
    assert not v and v.egress and not v.ingress


# --------------------------------------------------------------------------------- the dev plan's policies

def plan_policies(plan) -> list[dict]:
    return [r.inputs for r in plan.of_type(NP)]


def dev_namespaces(plan) -> flows.Namespaces:
    """What __main__.py gives the component, read back from the plan (vpc_cidr: the default the stacks keep)."""
    namespaces = {n.inputs["metadata"]["name"] for n in plan.of_type("kubernetes:core/v1:Namespace")}
    deployments = {d.inputs["metadata"]["name"] for d in plan.of_type("kubernetes:apps/v1:Deployment")}
    charts = {chart for _, chart, _ in conformance.helm_releases(plan)}
    listeners = [listener["port"] for g in plan.of_type(GATEWAY) for listener in g.inputs["spec"]["listeners"]]
    return flows.Namespaces(nim="nim", vpc_cidr="10.0.0.0/16",
                            monitoring="monitoring" if "monitoring" in namespaces else None,
                            open_webui="open-webui" if "open-webui" in namespaces else None,
                            aiperf="aiperf" in deployments, interceptor="keda-add-ons-http" in charts,
                            gateway=gw.EG_NAMESPACE in namespaces, gateway_tls=listeners == [443],
                            rate_limits=gw.REDIS in deployments)


def endpoint(peer: flows.Peer) -> Endpoint:
    if peer.cidr:
        return Endpoint(ip=peer.cidr)
    return Endpoint(namespace=peer.namespace, labels=dict(peer.labels or {"any": "pod"}))


def mismatches(policies, matrix) -> list[str]:
    out = []
    for f in matrix:
        verdict = allowed(policies, endpoint(f.source), endpoint(f.destination), f.port, f.protocol)
        if bool(verdict) != f.allowed:
            out.append(f"{f.source.name} -> {f.destination.name}:{f.port}/{f.protocol}: expected "
                       f"{'allowed' if f.allowed else 'denied'}, got {'allowed' if verdict else 'denied'} ({f.why})")
    return out


def test_reachability_matrix_of_the_dev_plan(dev_plan):
    ns = dev_namespaces(dev_plan)
    # the dev stack has every client but AIPerf, and the gateway without rate limits
    assert ns.interceptor and ns.monitoring and ns.open_webui and ns.gateway and not ns.rate_limits
    matrix = flows.expected_flows(ns)
    assert {f.allowed for f in matrix} == {True, False}
    assert len([f for f in matrix if not f.allowed]) >= 10
    assert mismatches(plan_policies(dev_plan), matrix) == []


@pytest.mark.parametrize("overrides", [("aiperf=true",), THREE_MODELS,
                                       ("monitoring=false", "open_webui=false", "aiperf=true"),
                                       ("gateway=false",), RATE_LIMITS,
                                       (*RATE_LIMITS, "monitoring=false", "open_webui=false"), TLS],
                         ids=["aiperf", "three-models", "bare", "no-gateway", "rate-limits", "bare-rate-limits",
                              "tls"])
def test_reachability_matrix_of_other_stacks(overrides):
    plan = plan_for(*overrides)
    assert plan.error is None, plan.error
    assert mismatches(plan_policies(plan), flows.expected_flows(dev_namespaces(plan))) == []


def test_every_owned_namespace_denies_ingress_by_default(dev_plan):
    owned = {"nim", "keda", "monitoring", "open-webui", *GATEWAY_NAMESPACES}
    assert {n.inputs["metadata"]["name"] for n in dev_plan.of_type("kubernetes:core/v1:Namespace")} >= owned
    denies = {p["metadata"]["namespace"] for p in plan_policies(dev_plan)
              if p["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}}
    assert denies == owned
    # a pod in each namespace that no allow names is unreachable from anywhere, on any port
    for n in owned:
        stranger = Endpoint(namespace=n, labels={"app": "stranger"})
        assert not allowed(plan_policies(dev_plan), ip("10.0.3.3/32"), stranger, 1234)


def test_the_matrix_catches_a_planted_mistake(dev_plan):
    without_gateway = plan_for("gateway=false")  # where Open WebUI calls the models itself
    planted = copy.deepcopy(plan_policies(without_gateway))
    [webui] = [p for p in planted if p["metadata"]["name"] == "allow-nim-from-open-webui"]
    webui["spec"]["ingress"][0]["ports"][0]["port"] = 8080  # Open WebUI's own port instead of NIM's
    found = mismatches(planted, flows.expected_flows(dev_namespaces(without_gateway)))
    assert found == ["Open WebUI -> NIM:8000/TCP: expected allowed, got denied "
                     "(Open WebUI calls a model that never scales to zero directly)"]
    # and an egress widened to every port lets plain HTTP out of nim
    planted = copy.deepcopy(plan_policies(dev_plan))
    [egress] = [p for p in planted if p["metadata"]["name"] == "egress-nim"]
    [https] = [r for r in egress["spec"]["egress"] if r["to"][0].get("ipBlock", {}).get("cidr") == "0.0.0.0/0"]
    del https["ports"]
    assert any("the internet:80/TCP: expected denied" in m
               for m in mismatches(planted, flows.expected_flows(dev_namespaces(dev_plan))))
    # and the HTTPS egress without its VPC exception reaches the API server's private endpoint
    planted = copy.deepcopy(plan_policies(dev_plan))
    [egress] = [p for p in planted if p["metadata"]["name"] == "egress-nim"]
    [https] = [r for r in egress["spec"]["egress"] if r["to"][0].get("ipBlock", {}).get("cidr") == "0.0.0.0/0"]
    assert https["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/16", "10.100.0.0/16",
                                                                         "172.20.0.0/16"]}}]
    del https["to"][0]["ipBlock"]["except"]
    assert [m for m in mismatches(planted, flows.expected_flows(dev_namespaces(dev_plan))) if ":443/TCP" in m] == [
        "NIM -> a VPC address:443/TCP: expected denied, got allowed (HTTPS out of nim goes outside the VPC only "
        "(NGC), not to the API server or other services in it)",
        "NIM -> the Kubernetes API Service:443/TCP: expected denied, got allowed (nor to Service addresses: the "
        "Kubernetes API, webhooks)",
        "NIM -> the Kubernetes API Service:443/TCP: expected denied, got allowed (nor to Service addresses: the "
        "Kubernetes API, webhooks)"]
    # and without the kube-dns Service address, name resolution through it fails
    planted = copy.deepcopy(plan_policies(dev_plan))
    [egress] = [p for p in planted if p["metadata"]["name"] == "egress-nim"]
    egress["spec"]["egress"] = [r for r in egress["spec"]["egress"]
                                if r["to"][0].get("ipBlock", {}).get("cidr") != "172.20.0.10/32"]
    assert [m for m in mismatches(planted, flows.expected_flows(dev_namespaces(dev_plan))) if "kube-dns" in m] == [
        "NIM -> kube-dns Service:53/UDP: expected allowed, got denied (name resolution through the kube-dns Service "
        "address)",
        "NIM -> kube-dns Service:53/TCP: expected allowed, got denied (name resolution through the kube-dns Service "
        "address)"]


def named(policies, name, namespace=None) -> dict:
    [found] = [p for p in policies if p["metadata"]["name"] == name
               and namespace in (None, p["metadata"]["namespace"])]
    return found


def test_the_matrix_catches_planted_gateway_mistakes(dev_plan):
    matrix = flows.expected_flows(dev_namespaces(dev_plan))
    # the API server's calls to the AI Gateway's pod mutator dropped: no proxy pod would start (failurePolicy Fail)
    planted = [p for p in copy.deepcopy(plan_policies(dev_plan))
               if p["metadata"]["name"] != "allow-ai-gateway-from-api-server"]
    assert mismatches(planted, matrix) == [
        "VPC CIDR (EKS control plane) -> AI Gateway controller:9443/TCP: expected allowed, got denied (the AI "
        "Gateway's pod mutator (failurePolicy Fail: no proxy pod starts without it))"]
    # the proxies' listener on the TLS port while the Gateway listens on plain HTTP
    planted = copy.deepcopy(plan_policies(dev_plan))
    for name in ("allow-gateway-from-load-balancer", "allow-gateway-from-open-webui"):
        named(planted, name)["spec"]["ingress"][0]["ports"][0]["port"] = gw.proxy_container_port(tls=True)
    assert [m.split(":")[0] for m in mismatches(planted, matrix)] == [
        "VPC CIDR (the NLB) -> gateway proxies", "Open WebUI -> gateway proxies"]
    # Open WebUI keeps its direct allow to the models although its only URL is the gateway's
    planted = plan_policies(dev_plan) + [named(plan_policies(plan_for("gateway=false")), "allow-nim-from-open-webui")]
    assert mismatches(planted, matrix) == [
        "Open WebUI -> NIM:8000/TCP: expected denied, got allowed (with the gateway, Open WebUI reaches the models "
        "only through it)"]
    # Redis open to every pod of EG's namespace, not only the rate limit service
    limited = plan_for(*RATE_LIMITS)
    planted = copy.deepcopy(plan_policies(limited))
    named(planted, "allow-redis-from-ratelimit")["spec"]["ingress"][0]["from"][0]["podSelector"] = {}
    assert mismatches(planted, flows.expected_flows(dev_namespaces(limited))) == [
        f"{src} -> Redis:6379/TCP: expected denied, got allowed (only the rate limit service keeps the counters)"
        for src in ("gateway proxies", "Envoy Gateway controller")]


def test_the_gateway_flows_follow_the_config(dev_plan):
    """Rate limits add the rate limit service's and Redis's allows; monitoring the proxies' scrape; without the
    gateway none of its namespaces or policies exist, and Open WebUI calls the models itself again."""
    def names(plan):
        return {p["metadata"]["name"] for p in plan_policies(plan)}

    limits = {"allow-ratelimit-from-proxies", "allow-envoy-gateway-from-ratelimit", "allow-redis-from-ratelimit"}
    assert not names(dev_plan) & limits and "allow-gateway-from-prometheus" in names(dev_plan)
    assert names(plan_for(*RATE_LIMITS)) >= limits
    assert "allow-gateway-from-prometheus" not in names(plan_for("monitoring=false"))
    assert {"allow-nim-from-open-webui", "allow-interceptor-from-open-webui"} & names(dev_plan) == set()
    without = plan_for("gateway=false")
    assert {"allow-nim-from-open-webui", "allow-interceptor-from-open-webui"} <= names(without)
    assert not {p["metadata"]["namespace"] for p in plan_policies(without)} & GATEWAY_NAMESPACES
    assert not any("gateway" in n for n in names(without))


def test_the_gateway_policies_wait_for_its_namespaces(dev_plan):
    namespaces = [n for n in dev_plan.of_type("kubernetes:core/v1:Namespace")
                  if n.inputs["metadata"]["name"] in GATEWAY_NAMESPACES]
    assert len(namespaces) == 3
    for p in dev_plan.of_type(NP):
        if p.inputs["metadata"]["namespace"] in GATEWAY_NAMESPACES:
            assert all(dev_plan.depends_on(p, n) for n in namespaces), p.inputs["metadata"]


def test_nim_egress_is_dns_https_and_the_models_only(dev_plan):
    ps = plan_policies(dev_plan)
    nim = Endpoint(namespace="nim", labels=dict(flows.NIM_PODS))
    coredns = Endpoint(namespace="kube-system", labels=dict(flows.COREDNS))
    assert allowed(ps, nim, coredns, 53, "UDP") and allowed(ps, nim, coredns, 53, "TCP")
    assert allowed(ps, nim, ip("52.1.2.3/32"), 443)
    for port in (22, 80, 2049, 5432):
        assert not allowed(ps, nim, ip("52.1.2.3/32"), port)
    # IMDS: NIM needs no AWS credentials
    assert not allowed(ps, nim, ip("169.254.169.254/32"), 80)


def test_stacks_without_the_optional_parts():
    """Three models on demand (no interceptor), and a stack without monitoring, Open WebUI and AIPerf: every
    owned namespace still denies by default, and no policy names a namespace the stack lacks."""
    for overrides in (THREE_MODELS, ("monitoring=false", "open_webui=false", "aiperf=false")):
        plan = plan_for(*overrides)
        assert plan.error is None, plan.error
        namespaces = {n.inputs["metadata"]["name"] for n in plan.of_type("kubernetes:core/v1:Namespace")}
        ps = plan_policies(plan)
        assert {p["metadata"]["namespace"] for p in ps} <= namespaces
        for p in ps:
            for rule in p["spec"].get("ingress", []) + p["spec"].get("egress", []):
                for peer in rule.get("from", []) + rule.get("to", []):
                    named = peer.get("namespaceSelector", {}).get("matchLabels", {}).get(netpol.NS_LABEL)
                    assert named is None or named in namespaces | {"kube-system"}, (p["metadata"], named)


def test_ports_match_the_components():
    assert flows.NIM_PORT == nim_component.PORT
    assert flows.PROMETHEUS_PORT == PROMETHEUS_PORT


def test_labels_select_the_pods_the_program_renders():
    """The labels the flows name are on the pods (NIM, Open WebUI, AIPerf)."""
    plan = plan_for("aiperf=true")
    templates = [r.inputs["spec"]["template"] for r in plan.resources
                 if r.type in ("kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:Deployment")]
    for labels in (flows.NIM_PODS, flows.OPEN_WEBUI, flows.AIPERF):
        assert any(netpol.selects({"matchLabels": labels}, t["metadata"]["labels"]) for t in templates), labels


def test_renamed_policies_keep_their_old_urns():
    """AIPerf's policies were GenAI-Perf's: each keeps the resource name it was created with as an alias, so a stack
    made with GenAI-Perf sees them replaced (new names), not one deleted and an unrelated one created."""
    plan = plan_for('nim_models=[{"name": "meta/llama3-8b-instruct", "min_replicas": 0}]', "aiperf=true")
    prefix = "urn:pulumi:dev::nim-on-eks::nim-on-eks:index:NetworkPolicies$kubernetes:networking.k8s.io/v1:NetworkPolicy::"
    policies = {r.inputs["metadata"]["name"]: r for r in plan.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert set(flows.RENAMED) <= set(policies)  # both: the model at zero is reached through the interceptor
    for new, old in flows.RENAMED.items():
        ns = policies[new].inputs["metadata"]["namespace"]
        assert f"{prefix}nim-on-eks-dev-network-policies-{ns}-{old}" in policies[new].aliases
    # (the provider's own aliases, its old API groups, are on every policy; only renamed ones carry an old name)
    assert not [a for name, r in policies.items() if name not in flows.RENAMED for a in r.aliases if "genai" in a]


# ------------------------------------------------------------------------ the charts' pods, rendered for real



@pytest.fixture(scope="module")
def chart_manifests(dev_plan, helm) -> list[tuple[str, dict]]:
    """(release namespace, manifest) of everything the dev plan's charts in the owned namespaces render."""
    out = []
    for r, chart, version in conformance.helm_releases(dev_plan):
        if chart not in ("keda", "keda-add-ons-http", "kube-prometheus-stack", "dcgm-exporter", "gateway-helm",
                         "ai-gateway-helm"):
            continue
        folder, missing = helm_render.without_missing_dependencies(helm_render.chart_folder(chart, version))
        off = [c for name, c in helm_render.dependency_conditions(helm_render.chart_folder(chart, version)).items()
               if name in missing and c]
        values = helm_render.switched_off(helm_render.release_values(r)[0], off)
        out += [(r.inputs["namespace"], m) for m in helm_render.render(
            helm, folder, name=r.inputs["name"], namespace=r.inputs["namespace"], values=values,
            kube_version=versions.DEFAULT_EKS_VERSION)]
    return out


@pytest.fixture(scope="module")
def chart_pods(chart_manifests) -> list[tuple[str, dict, dict[int, str]]]:
    """(namespace, pod labels, {containerPort: protocol}) of every pod template the dev plan's charts render."""
    out = []
    for ns, m in chart_manifests:
        template = (m.get("spec") or {}).get("template")
        if m.get("kind") in ("Deployment", "DaemonSet", "StatefulSet") and template:
            ports = {p["containerPort"]: p.get("protocol", "TCP")
                     for c in template["spec"]["containers"] for p in c.get("ports", [])}
            out.append((m["metadata"].get("namespace") or ns, template["metadata"]["labels"], ports))
    return out


@needs_charts
def test_prometheus_scrapes_nothing_in_keda(chart_manifests, dev_plan):
    """No ServiceMonitor or PodMonitor targets `keda` (so its metrics ports stay closed), and every ServiceMonitor
    the program makes targets pods Prometheus is admitted to, on the port's number."""
    monitors = [m for _, m in chart_manifests if m.get("kind") in ("ServiceMonitor", "PodMonitor")]
    monitors += [r.inputs for r in dev_plan.resources if r.type.endswith(":ServiceMonitor")]
    assert not [m["metadata"]["name"] for m in monitors
                if "keda" in ((m["spec"].get("namespaceSelector") or {}).get("matchNames") or [m["metadata"].get(
                    "namespace")])]
    ps = plan_policies(dev_plan)
    prometheus = Endpoint(namespace="monitoring", labels={**flows.PROMETHEUS, "prometheus": "x"})
    ours = [r.inputs for r in dev_plan.resources if r.type.endswith(":ServiceMonitor")]
    assert ours
    for m in ours:
        [target] = m["spec"]["namespaceSelector"]["matchNames"]
        for e in m["spec"]["endpoints"]:
            assert e["port"] == nim_component.PORT_NAME
            nim = Endpoint(namespace=target, labels=dict(flows.NIM_PODS), named_ports={e["port"]: nim_component.PORT})
            assert allowed(ps, prometheus, nim, nim_component.PORT)


@needs_charts
def test_chart_pods_carry_the_labels_and_ports_the_flows_name(chart_pods):
    def ports_of(ns, labels):
        found = [ports for n, pod_labels, ports in chart_pods
                 if n == ns and netpol.selects({"matchLabels": labels}, pod_labels)]
        assert len(found) == 1, (ns, labels, len(found))
        return found[0]

    assert flows.INTERCEPTOR_PORT in ports_of("keda", flows.INTERCEPTOR)
    assert flows.WEBHOOK_PORTS["keda-admission-webhooks"] in ports_of("keda", flows.KEDA_WEBHOOKS)
    metrics_api = ports_of("keda", flows.KEDA_METRICS_API)
    assert flows.WEBHOOK_PORTS["keda-operator-metrics-apiserver"] in metrics_api
    assert flows.KEDA_METRICS_PORT in metrics_api
    ports_of("keda", flows.KEDA_OPERATOR)
    assert flows.WEBHOOK_PORTS["prometheus-operator"] in ports_of("monitoring", flows.PROMETHEUS_OPERATOR)
    # (Grafana's and kube-state-metrics' subcharts are not vendored beside the charts: the render leaves them out;
    # the monitoring namespace admits its own pods whatever their labels)
    assert 9400 in ports_of("monitoring", flows.DCGM_EXPORTER)


@needs_charts
def test_gateway_chart_pods_carry_the_labels_and_ports_the_flows_name(chart_pods):
    """EG's and the AI Gateway's controllers, as gateway-helm v1.9.0 and ai-gateway-helm v1.1.0 render them with the
    plan's values (the proxies and the rate limit service are EG's run-time pods: planning/gateway.py has their
    labels and ports from EG's source)."""
    def ports_of(ns, labels):
        [found] = [ports for n, pod_labels, ports in chart_pods
                   if n == ns and netpol.selects({"matchLabels": labels}, pod_labels)]
        return found

    assert {gw.XDS_PORT, gw.RATELIMIT_XDS_PORT, gw.EG_WEBHOOK_PORT, gw.EG_METRICS_PORT} <= set(
        ports_of(gw.EG_NAMESPACE, gw.EG_LABELS))
    assert {gw.AI_WEBHOOK_PORT, gw.AI_EXTENSION_PORT, gw.AI_METRICS_PORT} <= set(
        ports_of(gw.AI_NAMESPACE, gw.AI_LABELS))


def service_targets(manifests: list[dict], namespace: str, name: str, port: int | str) -> list[tuple[Endpoint, int]]:
    """The pods behind a Service's port (by number or name), each with the pod port it lands on: the Service's
    selector against the pod templates of `manifests`, its targetPort resolved through the containers' port names."""
    [svc] = [m for m in manifests if m.get("kind") == "Service" and m["metadata"]["name"] == name
             and m["metadata"].get("namespace") == namespace]
    [sp] = [p for p in svc["spec"]["ports"] if port in (p["port"], p.get("name"))]
    out = []
    for m in manifests:
        template = (m.get("spec") or {}).get("template")
        if m.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet") or not template \
                or (m["metadata"].get("namespace") or namespace) != namespace \
                or not netpol.selects({"matchLabels": svc["spec"]["selector"]}, template["metadata"]["labels"]):
            continue
        names = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])
                 if p.get("name")}
        target = sp.get("targetPort", sp["port"])
        out.append((Endpoint(namespace=namespace, labels=template["metadata"]["labels"], named_ports=names),
                    names[target] if isinstance(target, str) else target))
    assert out, (namespace, name, port)
    return out


def in_namespace(manifests: list[tuple[str, dict]]) -> list[dict]:
    return [{**m, "metadata": {**m["metadata"], "namespace": m["metadata"].get("namespace") or ns}}
            for ns, m in manifests]


@needs_charts
def test_the_api_server_reaches_every_webhook_the_charts_declare(chart_manifests, dev_plan):
    """Every admission webhook and aggregated API the dev plan's charts register, in a namespace the program owns,
    is admitted from the VPC CIDR on the pod port its Service lands on: a fail-closed webhook left out (the AI
    Gateway's pod mutator) would stop the pods it mutates."""
    manifests = in_namespace(chart_manifests)
    owned = set(dev_namespaces(dev_plan).owned)
    services = []
    for m in manifests:
        if m.get("kind") in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            services += [w["clientConfig"]["service"] for w in m["webhooks"] if "service" in w["clientConfig"]]
        elif m.get("kind") == "APIService" and m["spec"].get("service"):
            services.append(m["spec"]["service"])
    checked = {(s["namespace"], s["name"]) for s in services if s["namespace"] in owned}
    assert {(gw.AI_NAMESPACE, "ai-gateway-controller"), (gw.EG_NAMESPACE, "envoy-gateway")} <= checked
    ps = plan_policies(dev_plan)
    for s in services:
        if s["namespace"] not in owned:
            continue
        for pod, port in service_targets(manifests, s["namespace"], s["name"], s.get("port", 443)):
            assert allowed(ps, ip("10.0.200.7/32"), pod, port), (s, port)


@needs_charts
def test_the_gateway_controllers_reach_what_their_config_names(chart_manifests, dev_plan):
    """EG reaches the extension server its rendered config names (gateway-helm's envoy-gateway-config), and the
    proxies and the rate limit service reach EG's Service ports they dial (EG v1.9.0: bootstrap XdsServerHost
    `envoy-gateway` 18000, ratelimit/resource.go `envoy-gateway` 18001)."""
    manifests = in_namespace(chart_manifests)
    [config] = [m for m in manifests
                if m.get("kind") == "ConfigMap" and m["metadata"]["name"] == "envoy-gateway-config"]
    fqdn = yaml.safe_load(config["data"]["envoy-gateway.yaml"])["extensionManager"]["service"]["fqdn"]
    service, namespace = fqdn["hostname"].split(".")[:2]
    ps = plan_policies(plan_for(*RATE_LIMITS))
    [(eg, _)] = service_targets(manifests, gw.EG_NAMESPACE, "envoy-gateway", gw.XDS_PORT)
    for pod, port in service_targets(manifests, namespace, service, fqdn["port"]):
        assert allowed(ps, eg, pod, port)
        assert not allowed(ps, Endpoint(namespace=gw.EG_NAMESPACE, labels=dict(gw.PROXY_LABELS)), pod, port)
    for client, service_port in ((gw.PROXY_LABELS, "grpc"), (gw.RATELIMIT_LABELS, "ratelimit")):
        for pod, port in service_targets(manifests, gw.EG_NAMESPACE, "envoy-gateway", service_port):
            assert allowed(ps, Endpoint(namespace=gw.EG_NAMESPACE, labels=dict(client)), pod, port), client


def plan_manifests(plan) -> list[dict]:
    return [r.inputs | {"kind": r.type.rsplit(":", 1)[-1]} for r in plan.resources
            if r.type in ("kubernetes:core/v1:Service", "kubernetes:apps/v1:Deployment",
                          "kubernetes:apps/v1:StatefulSet")]


@needs_charts
@pytest.mark.parametrize("overrides", [(), THREE_MODELS], ids=["dev", "three-models"])
def test_the_proxies_reach_every_backend_of_the_plan(chart_manifests, overrides):
    """Each model's Backend (host and port) leads, through its Service (or the ExternalName alias of the
    interceptor for a model at zero), to pods the proxies are admitted to, on the port the Service lands on."""
    plan = plan_for(*overrides)
    manifests = plan_manifests(plan) + in_namespace(chart_manifests)
    proxies = Endpoint(namespace=gw.EG_NAMESPACE, labels=dict(gw.PROXY_LABELS))
    backends = [b.inputs["spec"]["endpoints"][0]["fqdn"]
                for b in plan.of_type("kubernetes:gateway.envoyproxy.io/v1alpha1:Backend")]
    assert backends
    for fqdn in backends:
        name, namespace = fqdn["hostname"].split(".")[:2]
        [svc] = [m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == name
                 and m["metadata"]["namespace"] == namespace]
        if svc["spec"].get("type") == "ExternalName":
            name, namespace = svc["spec"]["externalName"].split(".")[:2]
        for pod, port in service_targets(manifests, namespace, name, fqdn["port"]):
            assert allowed(plan_policies(plan), proxies, pod, port), fqdn
            assert not allowed(plan_policies(plan), Endpoint(namespace="open-webui", labels=dict(flows.OPEN_WEBUI)),
                               pod, port), fqdn


@pytest.mark.parametrize("overrides", [(), TLS], ids=["plain", "tls"])
def test_the_gateway_listener_is_open_to_the_load_balancer_and_open_webui(overrides):
    """The proxies listen on the Gateway's port moved up by EG's well-known-port shift; the load balancer (from a
    VPC address) and Open WebUI (whose URL names the listener's port, the proxies' Service port) are admitted
    there, and only there."""
    dev_plan = plan_for(*overrides)
    [gateway] = dev_plan.of_type(GATEWAY)
    [listener] = gateway.inputs["spec"]["listeners"]
    pod_port = listener["port"] + gw.WELL_KNOWN_PORT_SHIFT
    [url] = [e["value"] for r in dev_plan.of_type("kubernetes:apps/v1:Deployment")
             if r.inputs["metadata"].get("namespace") == "open-webui"
             for c in r.inputs["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])
             if e["name"] == "OPENAI_API_BASE_URLS"]
    assert url == f"http://{gw.SERVICE_NAME}.{gw.EG_NAMESPACE}.svc.cluster.local:{listener['port']}/v1"
    ps = plan_policies(dev_plan)
    proxies = Endpoint(namespace=gw.EG_NAMESPACE, labels=dict(gw.PROXY_LABELS))
    webui = Endpoint(namespace="open-webui", labels=dict(flows.OPEN_WEBUI))
    for source in (ip("10.0.48.9/32"), webui):
        assert allowed(ps, source, proxies, pod_port)
        assert not allowed(ps, source, proxies, gw.proxy_container_port(tls=listener["port"] != 443))
    assert not allowed(ps, ip("198.51.100.7/32"), proxies, pod_port)  # outside the VPC (no client IP kept)


def test_tls_moves_the_proxies_port():
    """With TLS at the load balancer the Gateway listens on 443, so the proxies on 10443: only that port opens."""
    ns = flows.Namespaces(nim="nim", vpc_cidr="10.0.0.0/16", gateway=True, gateway_tls=True)
    ps = flows.policies(ns)
    proxies = Endpoint(namespace=gw.EG_NAMESPACE, labels=dict(gw.PROXY_LABELS))
    assert allowed(ps, ip("10.0.48.9/32"), proxies, 10443) and not allowed(ps, ip("10.0.48.9/32"), proxies, 10080)
    assert mismatches(ps, flows.expected_flows(ns)) == []


def test_prometheus_reaches_what_the_gateway_pod_monitor_scrapes(dev_plan):
    """The PodMonitor's port names, as EG (`metrics`, 19001) and the AI Gateway's sidecar (`aigw-admin`, 1064) name
    their ports."""
    [monitor] = dev_plan.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")
    names = {"metrics": gw.PROXY_METRICS_PORT, "aigw-admin": gw.EXTPROC_ADMIN_PORT}
    proxies = Endpoint(namespace=gw.EG_NAMESPACE, labels=dict(monitor.inputs["spec"]["selector"]["matchLabels"]),
                       named_ports=names)
    prometheus = Endpoint(namespace="monitoring", labels={**flows.PROMETHEUS, "prometheus": "x"})
    ps = plan_policies(dev_plan)
    for e in monitor.inputs["spec"]["podMetricsEndpoints"]:
        assert allowed(ps, prometheus, proxies, names[e["port"]]), e
        assert not allowed(ps, Endpoint(namespace="monitoring", labels=dict(flows.GRAFANA)), proxies, names[e["port"]])


def test_the_rate_limit_service_reaches_the_redis_its_config_names():
    plan = plan_for(*RATE_LIMITS)
    [eg] = [r for r, chart, _ in conformance.helm_releases(plan) if chart == "gateway-helm"]
    url = eg.inputs["values"]["config"]["envoyGateway"]["rateLimit"]["backend"]["redis"]["url"]
    host, port = url.rsplit(":", 1)
    name, namespace = host.split(".")[:2]
    ratelimit = Endpoint(namespace=gw.EG_NAMESPACE, labels=dict(gw.RATELIMIT_LABELS))
    for pod, pod_port in service_targets(plan_manifests(plan), namespace, name, int(port)):
        assert allowed(plan_policies(plan), ratelimit, pod, pod_port)
        assert not allowed(plan_policies(plan), Endpoint(namespace=gw.EG_NAMESPACE, labels=dict(gw.PROXY_LABELS)),
                           pod, pod_port)


# --------------------------------------------------------------------------------------- enforcement is on

def test_vpc_cni_enforces_network_policies(dev_plan):
    [cluster] = dev_plan.of_type("eks:index:Cluster")
    assert cluster.inputs["vpcCniOptions"]["enableNetworkPolicy"] is True
    [cni] = [r for r in dev_plan.of_type("aws:eks/addon:Addon") if r.inputs["addonName"] == "vpc-cni"]
    assert cni.implied
    assert json.loads(cni.inputs["configurationValues"])["enableNetworkPolicy"] == "true"


def test_each_default_deny_waits_for_the_allows_of_its_namespace(dev_plan):
    """Applied together on a running cluster, a deny created before its allows would drop the product's flows (and
    the API server's calls to fail-closed webhooks) for the seconds between them (review of issue 14)."""
    found = dev_plan.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    denies = [p for p in found if p.inputs["metadata"]["name"] == "default-deny-ingress"]
    assert denies
    for deny in denies:
        ns = deny.inputs["metadata"]["namespace"]
        allows = [p for p in found if p.inputs["metadata"]["namespace"] == ns and p is not deny]
        assert all(dev_plan.depends_on(deny, a) for a in allows), ns  # open-webui has none: reached by port-forward
    assert sum(1 for p in found if p.inputs["metadata"]["namespace"] == "nim") >= 3
