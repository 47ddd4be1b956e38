"""The network flows the product needs, declared once: components/netpol.py renders NetworkPolicies from them, and
tests/test_netpol.py checks those objects, through tools/netpol.py, against the same table plus the flows that
must stay denied. Pure data, no Pulumi.

Model (Kubernetes NetworkPolicy, kubernetes.io/docs/concepts/services-networking/network-policies): every namespace
the program owns gets a default deny for ingress (a policy selecting all its pods with policyTypes [Ingress] and no
rule); each `Allow` below adds one policy admitting one peer to some pods' ports. Namespaces are selected by the
label `kubernetes.io/metadata.name`, which the API server sets on every namespace (same page, "Targeting a
Namespace by its name").

What policies do not govern, so it is not declared here:
- kubelet probes: the Amazon VPC CNI's network policy agent always allows traffic to and from the node's IP, so
  liveness/readiness/startup probes pass every policy (aws/aws-network-policy-agent#56, fixed by PR #65: "allow all
  traffic to/from Node IP"; Kubernetes says the same of policies in general: "What you can't do": pods cannot block
  access from their resident node). `kubectl port-forward` enters the pod from the node too (Open WebUI, Grafana).
- hostNetwork pods (node-exporter, the CSI node plugins) have the node's address: Prometheus reaches them with its
  egress, which stays open.
- the EFS mount: the EFS CSI node plugin mounts on the node (hostNetwork), and the kernel's NFS client talks to
  the mount targets from the node's address, not the pod's; a NIM pod opens no connection to port 2049 itself.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from planning import gateway as gw
from planning.endpoint import nlb_source_cidrs
from planning.versions import KEDA_NAMESPACE

NS_LABEL = "kubernetes.io/metadata.name"

# Pods, by the labels their controllers put on them (ours: components/*.py; the charts': rendered by helm,
# tests/helm_render.py). `None` labels: every pod of the namespace.
NIM_PODS = {"app.kubernetes.io/name": "nim-llm"}
AIPERF = {"app.kubernetes.io/name": "aiperf"}
OPEN_WEBUI = {"app.kubernetes.io/name": "open-webui"}
INTERCEPTOR = {"app.kubernetes.io/name": "http-add-on", "app.kubernetes.io/component": "interceptor"}
KEDA_WEBHOOKS = {"app.kubernetes.io/name": "keda-admission-webhooks"}
KEDA_METRICS_API = {"app.kubernetes.io/name": "keda-operator-metrics-apiserver"}
KEDA_OPERATOR = {"app.kubernetes.io/name": "keda-operator"}
# prometheus-operator labels the pods of a Prometheus with app.kubernetes.io/name=prometheus
PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}
PROMETHEUS_OPERATOR = {"app": "kube-prometheus-stack-operator"}
GRAFANA = {"app.kubernetes.io/name": "grafana"}
KUBE_STATE_METRICS = {"app.kubernetes.io/name": "kube-state-metrics"}
DCGM_EXPORTER = {"app.kubernetes.io/name": "dcgm-exporter"}
ALERTMANAGER = {"app.kubernetes.io/name": "alertmanager"}
COREDNS = {"k8s-app": "kube-dns"}

NIM_PORT = 8000  # components/nim.py PORT
INTERCEPTOR_PORT = 8000  # the HTTP add-on interceptor's proxy port (chart keda-add-ons-http 0.15.0)
PROMETHEUS_PORT = 9090
WEBHOOK_PORTS = {
    # The API server calls these; in EKS it reaches pods from the control-plane ENIs, which sit in the cluster's
    # subnets with VPC addresses that change as EKS replaces them (EKS user guide, "cluster VPC and subnet
    # requirements"): the VPC CIDR is the narrowest stable peer.
    "keda-admission-webhooks": 9443,
    "keda-operator-metrics-apiserver": 6443,
    "prometheus-operator": 10250,  # its admission webhook (and metrics) on the operator's https port
}
# keda-operator-metrics-apiserver's Prometheus metrics port (chart keda 2.20.2): nothing scrapes it (the KEDA charts
# get no ServiceMonitor, components/scaling.py), so it stays closed
KEDA_METRICS_PORT = 8080
# The port the matrix tries for an allow that names no port (any port): one no component uses
ANY_PORT_SAMPLE = 1234


# Each owned namespace's policy that selects every pod for ingress and allows nothing (the other policies allow).
DEFAULT_DENY = "default-deny-ingress"
# Policies renamed since stacks were created with them: new name -> old one. components/netpol.py gives each its
# old resource name as an alias, so `pulumi up` replaces the object (Kubernetes names cannot change) instead of
# seeing one policy deleted and an unrelated one created. GenAI-Perf's pod became AIPerf's (issue 15).
RENAMED = {"allow-nim-from-aiperf": "allow-nim-from-genai-perf",
           "allow-interceptor-from-aiperf": "allow-interceptor-from-genai-perf"}

@dataclass(frozen=True)
class Peer:
    """One end of a flow: pods (namespace + labels; labels None = any pod there) or an IP block."""

    namespace: str | None = None
    labels: dict[str, str] | None = None
    cidr: str | None = None
    name: str = ""  # for tables and messages
    excluded: tuple[str, ...] = ()  # ranges inside `cidr` that are not part of it (ipBlock `except`)

    def __hash__(self) -> int:
        return hash((self.namespace, tuple(sorted((self.labels or {}).items())), self.cidr, self.excluded))


@dataclass(frozen=True)
class Allow:
    """Ingress to `to` from `source` on `ports` (TCP), for `why`."""

    name: str  # the policy's name
    to: Peer
    source: Peer
    ports: tuple[int, ...]
    why: str


@dataclass(frozen=True)
class Flow:
    """A connection to check: source -> destination:port/protocol, and whether policies must allow it."""

    source: Peer
    destination: Peer
    port: int
    allowed: bool
    why: str
    protocol: str = "TCP"


@dataclass
class Namespaces:
    """The namespaces the program owns in a stack, and the facts the policies need."""

    nim: str
    vpc_cidr: str
    keda: str = KEDA_NAMESPACE
    monitoring: str | None = "monitoring"  # None: monitoring is off
    open_webui: str | None = "open-webui"  # None: Open WebUI is off
    aiperf: bool = True  # the AIPerf benchmark pod runs (config `aiperf`)
    interceptor: bool = True  # the HTTP add-on runs (a model scales to zero)
    gateway: bool = False  # the gateway runs (config `gateway`): Envoy Gateway, the AI Gateway, the proxies
    gateway_tls: bool = False  # the load balancer terminates TLS: the proxies listen on 10443, not 10080
    rate_limits: bool = False  # a key has tokens_per_minute: EG's rate limit service and its Redis run
    owned: list[str] = field(init=False)

    def __post_init__(self) -> None:
        gateway = (gw.EG_NAMESPACE, gw.AI_NAMESPACE, gw.ROUTES_NAMESPACE) if self.gateway else ()
        self.owned = [n for n in (self.nim, self.keda, self.monitoring, self.open_webui, *gateway) if n]


def allows(ns: Namespaces) -> list[Allow]:
    """Every ingress the product needs into the namespaces it owns."""
    nim = Peer(ns.nim, NIM_PODS, name="NIM")
    vpc = Peer(cidr=ns.vpc_cidr, name="VPC CIDR (EKS control plane)")
    proxies = Peer(gw.EG_NAMESPACE, gw.PROXY_LABELS, name="gateway proxies")
    # With the gateway, Open WebUI's only URL is the gateway's (components/webui.py): it calls no model itself.
    webui_calls_models = ns.open_webui and not ns.gateway
    out: list[Allow] = []
    # --- clients of the models
    if webui_calls_models:
        out.append(Allow("nim-from-open-webui", nim, Peer(ns.open_webui, OPEN_WEBUI, name="Open WebUI"),
                         (NIM_PORT,), "Open WebUI calls a model that never scales to zero directly"))
    if ns.gateway:
        out.append(Allow("nim-from-gateway", nim, proxies, (NIM_PORT,),
                         "the gateway's proxies send each request to its model (the model's own Service)"))
    if ns.aiperf:
        out.append(Allow("nim-from-aiperf", nim, Peer(ns.nim, AIPERF, name="AIPerf"), (NIM_PORT,),
                         "the benchmark pod measures a model directly"))
    if ns.interceptor:
        interceptor = Peer(ns.keda, INTERCEPTOR, name="HTTP add-on interceptor")
        out.append(Allow("nim-from-interceptor", nim, interceptor, (NIM_PORT,),
                         "the interceptor forwards requests to a model it woke"))
        # The models' URLs (components/nim.py model_url) name the interceptor for models that scale to zero, and so
        # do the gateway's backends for them (planning/gateway.py backend_spec).
        clients = ((ns.open_webui if webui_calls_models else None, OPEN_WEBUI, "Open WebUI", "open-webui"),
                   (ns.nim if ns.aiperf else None, AIPERF, "AIPerf", "aiperf"),
                   (gw.EG_NAMESPACE if ns.gateway else None, gw.PROXY_LABELS, "gateway proxies", "gateway"))
        for client, labels, name, policy in clients:
            if client:
                out.append(Allow(f"interceptor-from-{policy}", interceptor, Peer(client, labels, name=name),
                                 (INTERCEPTOR_PORT,), "the model's URL is the interceptor's, which wakes it at zero"))
    # --- the API server to webhooks and aggregated APIs
    out += [
        Allow("keda-webhooks-from-api-server", Peer(ns.keda, KEDA_WEBHOOKS, name="KEDA admission webhooks"), vpc,
              (WEBHOOK_PORTS["keda-admission-webhooks"],), "ScaledObject validation"),
        Allow("keda-metrics-api-from-api-server", Peer(ns.keda, KEDA_METRICS_API, name="KEDA metrics API server"),
              vpc, (WEBHOOK_PORTS["keda-operator-metrics-apiserver"],), "the external metrics API the HPAs read"),
        # KEDA's own components call each other (metrics server -> operator gRPC, operator -> the add-on's scaler,
        # scaler -> interceptor admin): chart-internal ports, admitted within the namespace.
        Allow("keda-within-namespace", Peer(ns.keda, name="KEDA"), Peer(ns.keda, name="KEDA"), (),
              "KEDA's components call each other on chart-internal ports"),
    ]
    if ns.monitoring:
        prometheus = Peer(ns.monitoring, PROMETHEUS, name="Prometheus")
        out += [
            Allow("nim-from-prometheus", nim, prometheus, (NIM_PORT,), "the NIM ServiceMonitor scrapes /v1/metrics"),
            # The monitoring stack's components talk among themselves on many chart-internal ports (Prometheus
            # scrapes kube-state-metrics, DCGM exporter, Grafana, Alertmanager and the operator; Grafana reads
            # Prometheus; Prometheus sends to Alertmanager): admitted within the namespace, nothing from outside.
            Allow("monitoring-within-namespace", Peer(ns.monitoring, name="monitoring"),
                  Peer(ns.monitoring, name="monitoring"), (), "the monitoring stack's internal traffic"),
            Allow("prometheus-from-keda", prometheus, Peer(ns.keda, KEDA_OPERATOR, name="KEDA operator"),
                  (PROMETHEUS_PORT,), "the models' KEDA triggers query Prometheus"),
            Allow("prometheus-operator-from-api-server",
                  Peer(ns.monitoring, PROMETHEUS_OPERATOR, name="prometheus-operator"), vpc,
                  (WEBHOOK_PORTS["prometheus-operator"],), "PrometheusRule validation webhook"),
        ]
    if ns.gateway:
        out += gateway_allows(ns, proxies, vpc)
    return out


def gateway_allows(ns: Namespaces, proxies: Peer, vpc: Peer) -> list[Allow]:
    """The gateway's flows (planning/gateway.py has the ports and labels, and where each was read): clients to the
    proxies, the proxies and the rate limit service to EG's controller, EG to the AI Gateway's extension server, the
    API server to both controllers' webhooks, the proxies to the rate limit service, that to Redis. The proxies'
    calls to the models are with the other clients of the models (allows)."""
    listener = gw.proxy_container_port(ns.gateway_tls)
    eg = Peer(gw.EG_NAMESPACE, gw.EG_LABELS, name="Envoy Gateway controller")
    ai = Peer(gw.AI_NAMESPACE, gw.AI_LABELS, name="AI Gateway controller")
    # The NLB (planning/endpoint.py: ip targets, client IP preservation off) reaches the pods from its own private
    # addresses in the VPC's subnets, for requests and health checks alike: AWS, "Edit target group attributes for
    # your Network Load Balancer" ("When you disable client IP preservation, the source IP address is the private IP
    # address of the Network Load Balancer"; default for IP targets over TCP: disabled) and the AWS Load Balancer
    # Controller v3.5.0 docs/guide/service/nlb.md ("Worker node security groups rules": NLB subnet CIDRs). The VPC
    # CIDR holds every subnet the NLB can be in; pods have VPC addresses too, and the API key guards the listener.
    out = [
        Allow(f"gateway-from-load-balancer{f'-{i}' if i else ''}", proxies, Peer(cidr=cidr, name="VPC CIDR (the NLB)"),
              (listener,), "clients through the load balancer, and its health checks")
        for i, cidr in enumerate(nlb_source_cidrs(ns.vpc_cidr))
    ]
    out += [
        Allow("envoy-gateway-from-proxies", eg, proxies, (gw.XDS_PORT,), "the proxies' configuration (xDS)"),
        # failurePolicy Ignore: without it the proxies start, only without their zone (zone-aware routing)
        Allow("envoy-gateway-from-api-server", eg, vpc, (gw.EG_WEBHOOK_PORT,),
              "EG's topology injector webhook (the proxies' zone)"),
        Allow("ai-gateway-from-api-server", ai, vpc, (gw.AI_WEBHOOK_PORT,),
              "the AI Gateway's pod mutator (failurePolicy Fail: no proxy pod starts without it)"),
        Allow("ai-gateway-from-envoy-gateway", ai, eg, (gw.AI_EXTENSION_PORT,),
              "EG calls the AI Gateway's extension server on every translation"),
    ]
    if ns.open_webui:
        out.append(Allow("gateway-from-open-webui", proxies, Peer(ns.open_webui, OPEN_WEBUI, name="Open WebUI"),
                         (listener,), "Open WebUI calls the models through the gateway, with a key of its own"))
    if ns.rate_limits:
        ratelimit = Peer(gw.EG_NAMESPACE, gw.RATELIMIT_LABELS, name="rate limit service")
        out += [
            Allow("ratelimit-from-proxies", ratelimit, proxies, (gw.RATELIMIT_PORT,),
                  "the proxies ask the rate limit service before each request"),
            Allow("envoy-gateway-from-ratelimit", eg, ratelimit, (gw.RATELIMIT_XDS_PORT,),
                  "the rate limit service's configuration"),
            Allow("redis-from-ratelimit", Peer(gw.EG_NAMESPACE, gw.REDIS_LABELS, name="Redis"), ratelimit,
                  (gw.REDIS_PORT,), "the rate limit counters"),
        ]
    if ns.monitoring:
        out.append(Allow("gateway-from-prometheus", proxies, Peer(ns.monitoring, PROMETHEUS, name="Prometheus"),
                         (gw.PROXY_METRICS_PORT, gw.EXTPROC_ADMIN_PORT),
                         "the gateway's PodMonitor: Envoy's stats and the AI Gateway's token metrics"))
    return out


@dataclass(frozen=True)
class Egress:
    """The egress the `nim` namespace keeps; everything else from it is denied."""

    name: str
    to: Peer
    ports: tuple[tuple[str, int], ...]
    why: str


# Where EKS puts Service addresses when the cluster names no range, as this stack's does not: 10.100.0.0/16 or
# 172.20.0.0/16 (EKS API, KubernetesNetworkConfigRequest.serviceIpv4Cidr); kube-dns is the .10 of it.
EKS_SERVICE_RANGES = ("10.100.0.0/16", "172.20.0.0/16")


def _kube_dns_ip(service_range: str) -> str:
    return f"{ipaddress.ip_network(service_range)[10]}/32"


def nim_egress(ns: Namespaces) -> list[Egress]:
    out = [
        Egress("dns", Peer("kube-system", COREDNS, name="CoreDNS"), (("UDP", 53), ("TCP", 53)), "name resolution"),
        # and kube-dns's Service address itself: the agent checks a Service's address against the rules, and the
        # controller adding it for the selector above has been reported missed (amazon-network-policy-controller-k8s
        # #222); a pod cannot resolve names without it
        *(Egress(f"dns-service-{i}", Peer(cidr=_kube_dns_ip(r), name="kube-dns Service"), (("UDP", 53), ("TCP", 53)),
                 "name resolution through the kube-dns Service address") for i, r in enumerate(EKS_SERVICE_RANGES)),
        # NGC's endpoints (nvcr.io, api.ngc.nvidia.com, the CDN the model files come from) have no fixed addresses:
        # the policy language has no names, so 443 to anywhere; all other ports to the internet stay closed.
        # ... but not inside the VPC (the API server's private endpoint, other services) nor to Service addresses (the
        # Kubernetes API, webhooks): nothing NIM needs is there
        Egress("https", Peer(cidr="0.0.0.0/0", name="anywhere outside the VPC (NGC)",
                             excluded=(ns.vpc_cidr, *EKS_SERVICE_RANGES)),
               (("TCP", 443),),
               "NGC (images are pulled by the node; the model files by NIM and the pre-cache Job)"),
    ]
    if ns.aiperf:
        out.append(Egress("nim", Peer(ns.nim, NIM_PODS, name="NIM"), (("TCP", NIM_PORT),), "AIPerf -> NIM"))
    if ns.aiperf and ns.interceptor:
        out.append(Egress("interceptor", Peer(ns.keda, INTERCEPTOR, name="HTTP add-on interceptor"),
                          (("TCP", INTERCEPTOR_PORT),), "AIPerf -> a model through the interceptor"))
    return out


def policies(ns: Namespaces) -> list[dict]:
    """The NetworkPolicy objects (apiVersion networking.k8s.io/v1), as plain dicts."""

    def selector(labels: dict[str, str] | None) -> dict:
        return {"matchLabels": dict(labels)} if labels else {}

    def peer(p: Peer) -> dict:
        if p.cidr:
            return {"ipBlock": {"cidr": p.cidr, **({"except": list(p.excluded)} if p.excluded else {})}}
        return {"namespaceSelector": {"matchLabels": {NS_LABEL: p.namespace}}, "podSelector": selector(p.labels)}

    def obj(name: str, namespace: str, spec: dict) -> dict:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": {"app.kubernetes.io/part-of": "nim-on-eks"}},
                "spec": spec}

    out = [obj(DEFAULT_DENY, n, {"podSelector": {}, "policyTypes": ["Ingress"]}) for n in ns.owned]
    for a in allows(ns):
        rule: dict = {"from": [peer(a.source)]}
        if a.ports:
            rule["ports"] = [{"protocol": "TCP", "port": p} for p in a.ports]
        out.append(obj(f"allow-{a.name}", a.to.namespace, {"podSelector": selector(a.to.labels),
                                                           "policyTypes": ["Ingress"], "ingress": [rule]}))
    out.append(obj("egress-nim", ns.nim, {
        "podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [peer(e.to)], "ports": [{"protocol": proto, "port": port} for proto, port in e.ports]}
                   for e in nim_egress(ns)],
    }))
    return out


def expected_flows(ns: Namespaces) -> list[Flow]:
    """The reachability matrix: every declared allow, and the flows that must be denied."""
    out = [Flow(a.source, a.to, port, True, a.why) for a in allows(ns) for port in (a.ports or (ANY_PORT_SAMPLE,))]
    for e in nim_egress(ns):
        src = Peer(ns.nim, AIPERF if e.name in ("nim", "interceptor") else NIM_PODS,
                   name="AIPerf" if e.name in ("nim", "interceptor") else "NIM")
        # a range stands for an address in it: anywhere (NGC) for a sample public one, a single address as itself
        dst = Peer(cidr="203.0.113.10/32", name="an NGC address") if e.to.cidr == "0.0.0.0/0" else e.to
        out += [Flow(src, dst, port, True, e.why, proto) for proto, port in e.ports]
    nim = Peer(ns.nim, NIM_PODS, name="NIM")
    vpc_host = Peer(cidr=_host(ns.vpc_cidr), name="a VPC address")
    keda_op = Peer(ns.keda, KEDA_OPERATOR, name="KEDA operator")
    out += [
        Flow(Peer(ns.keda, KEDA_WEBHOOKS, name="KEDA admission webhooks"), nim, NIM_PORT, False,
             "only the interceptor in keda is a client of the models"),
        Flow(vpc_host, nim, NIM_PORT, False, "nothing outside the cluster reaches NIM"),
        Flow(Peer(ns.nim, NIM_PODS, name="NIM"), nim, NIM_PORT, False, "models do not call each other"),
        Flow(nim, Peer(cidr="203.0.113.10/32", name="the internet"), 80, False, "no plain HTTP out of nim"),
        Flow(nim, Peer(cidr=_host(ns.vpc_cidr), name="a VPC address"), 2049, False,
             "the EFS mount is the node's, not the pod's"),
        Flow(nim, Peer(cidr=_host(ns.vpc_cidr), name="a VPC address"), 443, False,
             "HTTPS out of nim goes outside the VPC only (NGC), not to the API server or other services in it"),
        *(Flow(nim, Peer(cidr=f"{ipaddress.ip_network(r)[1]}/32", name="the Kubernetes API Service"), 443, False,
               "nor to Service addresses: the Kubernetes API, webhooks") for r in EKS_SERVICE_RANGES),
        Flow(nim, Peer(ns.keda, KEDA_OPERATOR, name="KEDA operator"), 9666, False, "nim pods call nothing in keda"),
        Flow(nim, Peer("kube-system", COREDNS, name="CoreDNS"), 9153, False, "only DNS on CoreDNS"),
        Flow(vpc_host, Peer(ns.keda, KEDA_OPERATOR, name="KEDA operator"), 9666, False,
             "only the webhook ports are open to the control plane"),
        Flow(keda_op, Peer(ns.keda, KEDA_WEBHOOKS, name="KEDA admission webhooks"), 9443, True,
             "KEDA within its namespace"),
    ]
    if ns.open_webui:
        webui = Peer(ns.open_webui, OPEN_WEBUI, name="Open WebUI")
        out += [
            Flow(nim, webui, 8080, False, "nothing in the cluster calls Open WebUI (port-forward comes from the node)"),
            Flow(vpc_host, webui, 8080, False, "Open WebUI is not reachable from the VPC"),
        ]
    if ns.monitoring:
        prometheus = Peer(ns.monitoring, PROMETHEUS, name="Prometheus")
        grafana = Peer(ns.monitoring, GRAFANA, name="Grafana")
        out += [
            Flow(grafana, prometheus, PROMETHEUS_PORT, True, "Grafana's datasource"),
            Flow(prometheus, Peer(ns.monitoring, KUBE_STATE_METRICS, name="kube-state-metrics"), 8080, True,
                 "scrape kube-state-metrics"),
            Flow(prometheus, Peer(ns.monitoring, DCGM_EXPORTER, name="DCGM exporter"), 9400, True, "GPU metrics"),
            Flow(prometheus, Peer(ns.monitoring, ALERTMANAGER, name="Alertmanager"), 9093, True, "alerts"),
            Flow(Peer(ns.monitoring, GRAFANA, name="Grafana"), nim, NIM_PORT, False, "only Prometheus scrapes NIM"),
            Flow(nim, prometheus, PROMETHEUS_PORT, False, "NIM does not query Prometheus"),
            Flow(prometheus, Peer(ns.keda, KEDA_METRICS_API, name="KEDA metrics API server"), KEDA_METRICS_PORT,
                 False, "no ServiceMonitor scrapes KEDA"),
            Flow(vpc_host, grafana, 3000, False, "Grafana only through port-forward"),
        ]
        if ns.open_webui:
            out.append(Flow(Peer(ns.open_webui, OPEN_WEBUI, name="Open WebUI"), prometheus, PROMETHEUS_PORT, False,
                            "Open WebUI does not read metrics"))
    if ns.gateway:
        out += _gateway_denied(ns)
    return out


def _gateway_denied(ns: Namespaces) -> list[Flow]:
    """What the gateway's policies must keep out: each of its parts is reached only by the one that calls it."""
    nim = Peer(ns.nim, NIM_PODS, name="NIM")
    vpc_host = Peer(cidr=_host(ns.vpc_cidr), name="a VPC address")
    proxies = Peer(gw.EG_NAMESPACE, gw.PROXY_LABELS, name="gateway proxies")
    eg = Peer(gw.EG_NAMESPACE, gw.EG_LABELS, name="Envoy Gateway controller")
    ai = Peer(gw.AI_NAMESPACE, gw.AI_LABELS, name="AI Gateway controller")
    out = [
        Flow(nim, eg, gw.XDS_PORT, False, "only the proxies fetch their configuration"),
        Flow(vpc_host, eg, gw.XDS_PORT, False, "only the proxies fetch their configuration"),
        Flow(vpc_host, ai, gw.AI_EXTENSION_PORT, False, "only EG's controller calls the extension server"),
        Flow(proxies, ai, gw.AI_EXTENSION_PORT, False, "only EG's controller calls the extension server"),
        Flow(vpc_host, proxies, gw.PROXY_METRICS_PORT, False, "the proxies' metrics are Prometheus's alone"),
        Flow(vpc_host, eg, gw.EG_METRICS_PORT, False, "nothing scrapes EG's controller"),
        Flow(vpc_host, ai, gw.AI_METRICS_PORT, False, "nothing scrapes the AI Gateway's controller"),
        Flow(proxies, nim, 8080, False, "the proxies reach a model on its port only"),
        Flow(eg, nim, NIM_PORT, False, "only the proxies send requests to the models"),
    ]
    if ns.open_webui:
        webui = Peer(ns.open_webui, OPEN_WEBUI, name="Open WebUI")
        out += [Flow(webui, nim, NIM_PORT, False, "with the gateway, Open WebUI reaches the models only through it"),
                Flow(webui, eg, gw.XDS_PORT, False, "only the proxies fetch their configuration")]
        if ns.interceptor:
            out.append(Flow(webui, Peer(ns.keda, INTERCEPTOR, name="HTTP add-on interceptor"), INTERCEPTOR_PORT,
                            False, "with the gateway, Open WebUI reaches the models only through it"))
    if ns.monitoring:
        out.append(Flow(Peer(ns.monitoring, GRAFANA, name="Grafana"), proxies, gw.PROXY_METRICS_PORT, False,
                        "only Prometheus scrapes the proxies"))
    if ns.rate_limits:
        redis = Peer(gw.EG_NAMESPACE, gw.REDIS_LABELS, name="Redis")
        out += [
            Flow(proxies, redis, gw.REDIS_PORT, False, "only the rate limit service keeps the counters"),
            Flow(eg, redis, gw.REDIS_PORT, False, "only the rate limit service keeps the counters"),
            Flow(nim, redis, gw.REDIS_PORT, False, "only the rate limit service keeps the counters"),
            Flow(vpc_host, redis, gw.REDIS_PORT, False, "only the rate limit service keeps the counters"),
            Flow(vpc_host, Peer(gw.EG_NAMESPACE, gw.RATELIMIT_LABELS, name="rate limit service"), gw.RATELIMIT_PORT,
                 False, "only the proxies ask the rate limit service"),
        ]
    return out


def _host(cidr: str) -> str:
    """An address inside `cidr` (its tenth), as a /32."""
    return f"{ipaddress.ip_network(cidr)[10]}/32"


def readme_reachability_table() -> str:
    """The README's reachability table: the matrix of a stack with every optional part on (Open WebUI, AIPerf,
    monitoring, a model at zero behind the interceptor, the gateway with a rate limit, without TLS), default VPC
    CIDR."""
    ns = Namespaces(nim="nim", vpc_cidr="10.0.0.0/16", aiperf=True, gateway=True, rate_limits=True)

    def where(p: Peer) -> str:
        return f"{p.name} ({p.cidr})" if p.cidr else f"{p.name} (`{p.namespace}`)"

    rows = ["| From | To | Port | | Why |", "|---|---|---|---|---|"]
    for f in expected_flows(ns):
        port = "any (same namespace)" if f.port == ANY_PORT_SAMPLE else f"{f.port}/{f.protocol}"
        rows.append(f"| {where(f.source)} | {where(f.destination)} | {port} | "
                    f"{'allowed' if f.allowed else '**denied**'} | {f.why} |")
    return "\n".join(rows)
