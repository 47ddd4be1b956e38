"""The one authenticated, OpenAI-compatible endpoint in front of every model: Envoy AI Gateway v1.1.0 on Envoy
Gateway v1.9.0. Pure data and the specs of its objects; components/gateway.py creates them.

How a request travels (envoyproxy/ai-gateway v1.1.0 and envoyproxy/gateway v1.9.0, read at their tags):
- the load balancer (planning/endpoint.py, AWS Load Balancer Controller) -> the Envoy proxy pods EG runs for our
  Gateway, in EG's namespace, behind the Service EnvoyProxy names `SERVICE_NAME`;
- Envoy's HTTP filters run in EG's order (internal/xds/translator/httpfilters.go newOrderedHTTPFilter): API key auth
  (order 7) before the AI Gateway's external processor (100+) and the global rate limit (303). A request without a
  valid key is answered 401 by Envoy itself, before any body is read or any model is woken;
- the external processor (the AI Gateway's sidecar, injected by its controller's webhook into the proxy pods) reads
  the body's `model`, sets the `x-ai-eg-model` header the AIGatewayRoute's rules match, counts the tokens of the
  answer into dynamic metadata (namespace `io.envoy.ai_gateway`), and answers `GET /v1/models` itself from the
  route's rules (internal/extproc/models_processor.go), so listing models wakes none;
- the route's backend is an EG `Backend` with the model's in-cluster host name (the model's own Service, or the
  HTTP add-on's `-proxy` name for a model that scales to zero, which wakes it). AIGatewayRoutes rewrite Host to the
  backend's host (the controller's `ai-eg-host-rewrite` HTTPRouteFilter, type Backend): the interceptor routes on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from planning.endpoint import HTTP_PORT, HTTPS_PORT
from planning.scheduling import CPU_POOL_AFFINITY
from planning.security import RUNTIME_DEFAULT_SECCOMP, restricted_container
from planning.workloads import CPU_POOL, EXTPROC_SIDECAR

# Where each part runs. EG's chart and the AI Gateway's install into the namespaces their guides use (EG:
# gateway.envoyproxy.io install docs; AI Gateway: site/docs/getting-started/installation.md), and EG runs the proxy
# pods of every Gateway in its own namespace (its default "ControllerNamespace" deploy mode). The Gateway API
# objects, the backends and the API keys' Secret have a namespace of their own: no pods, and RBAC on them is RBAC
# on the endpoint.
EG_NAMESPACE = "envoy-gateway-system"
AI_NAMESPACE = "envoy-ai-gateway-system"
ROUTES_NAMESPACE = "nim-gateway"
EG_RELEASE, AI_CRDS_RELEASE, AI_RELEASE = "eg", "aieg-crd", "aieg"
GATEWAY_CLASS = "nim-on-eks"
GATEWAY = "nim"
# EG's controller name (the AI Gateway's manifests/envoy-gateway-values.yaml, and EG's default)
CONTROLLER_NAME = "gateway.envoyproxy.io/gatewayclass-controller"
# The proxy pods' Service, named through EnvoyProxy `envoyService.name` (else EG derives a name with a hash): Open
# WebUI and the outputs address it, and the load balancer's waiter finds it.
SERVICE_NAME = "nim-gateway"
# EG moves a listener port below 1024 up by 10000 inside the pod, so Envoy needs no NET_BIND_SERVICE
# (internal/gatewayapi/translator.go wellKnownPortShift, listener.go).
WELL_KNOWN_PORT_SHIFT = 10000
# Labels EG puts on every proxy pod (internal/infrastructure/kubernetes/proxy/resource.go EnvoyAppLabel)
PROXY_LABELS = {"app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy",
                "app.kubernetes.io/managed-by": "envoy-gateway"}
PROXY_METRICS_PORT = 19001  # Envoy's Prometheus stats, port name `metrics` (internal/xds/bootstrap EnvoyStatsPort)
EXTPROC_ADMIN_PORT = 1064  # the AI Gateway sidecar's `aigw-admin` port: /metrics, /health (extproc_builder.go)
XDS_PORT = 18000  # EG's xDS server the proxies connect to (chart gateway-helm v1.9.0 Service `envoy-gateway`)
RATELIMIT_XDS_PORT = 18001  # EG's config server for the rate limit service (ratelimit/resource.go)
EG_WEBHOOK_PORT = 9443  # EG's topology injector webhook (failurePolicy Ignore)
EG_METRICS_PORT = 19001
AI_WEBHOOK_PORT = 9443  # the AI Gateway's pod mutator (failurePolicy Fail: no proxy pod starts without it)
AI_EXTENSION_PORT = 1063  # the AI Gateway's extension server EG calls on every translation (gRPC)
AI_METRICS_PORT = 8080
RATELIMIT_PORT = 8081  # the rate limit service's gRPC port the proxies call (ratelimit/resource.go InfraGRPCPort)
RATELIMIT_LABELS = {"app.kubernetes.io/name": "envoy-ratelimit", "app.kubernetes.io/component": "ratelimit",
                    "app.kubernetes.io/managed-by": "envoy-gateway"}
EG_LABELS = {"app.kubernetes.io/name": "gateway-helm", "app.kubernetes.io/instance": EG_RELEASE}
AI_LABELS = {"app.kubernetes.io/name": "ai-gateway-helm", "app.kubernetes.io/instance": AI_RELEASE}
REDIS = "ratelimit-redis"
REDIS_LABELS = {"app.kubernetes.io/name": REDIS}
REDIS_PORT = 6379
REDIS_UID = 999  # the `redis` user of the official image (docker-library/redis alpine Dockerfile: adduser -u 999)

# The header the API key filter sets to the key's name (its client id) once the key is valid, overwriting whatever
# the client sent (envoy source/extensions/filters/http/api_key_auth: headers.setCopy); the rate limits select on it.
CLIENT_ID_HEADER = "x-nim-on-eks-client"
# Where the AI Gateway puts a request's token counts (examples/token_ratelimit/token_ratelimit.yaml)
AI_METADATA_NAMESPACE = "io.envoy.ai_gateway"
TOTAL_TOKENS_KEY = "llm_total_token"
# The proxies buffer a request's body for the external processor; EG's 32 KiB default cuts long prompts (the AI
# Gateway's examples/basic/basic.yaml raises it to 50 MiB for that reason).
BUFFER_LIMIT = "50Mi"
# Longest an answer may take through the gateway when the model is up: EG's default is 15 s and the AI Gateway's 60 s
# (AIGatewayRoute `timeouts` doc), both shorter than a long generation. A model at zero adds its cold start.
ANSWER_SECONDS = 600

# The client the gateway authenticates Open WebUI as; its key lives in Kubernetes only.
OPEN_WEBUI_CLIENT = "open-webui"
RESERVED_KEY_NAMES = (OPEN_WEBUI_CLIENT,)
KEY_NAME_RE = re.compile(r"[a-z]([a-z0-9-]{0,30}[a-z0-9])?")
KEY_LENGTH = 48  # characters of [A-Za-z0-9]: ~285 bits


@dataclass(frozen=True)
class ApiKey:
    """One client of the endpoint: its name (the client id, and its entry in Secrets Manager), an optional limit of
    tokens (prompt and answer) per minute, and a rotation number: a new number is a new key."""

    name: str
    tokens_per_minute: int | None = None
    rotation: int = 0


@dataclass(frozen=True)
class RoutedModel:
    """A model as the gateway routes to it: the name clients put in `model`, where it listens, and how long an answer
    may take (its cold start included when it scales to zero)."""

    served_model_name: str
    resource_name: str  # a DNS label for its backend objects (the model's Kubernetes name)
    host: str
    port: int
    timeout_seconds: int


def answer_timeout_seconds(scales_to_zero: bool, cold_start_limit_s: int) -> int:
    """How long the gateway waits for a model's whole answer: a long generation, plus the longest cold start the
    interceptor holds a request for when the model may be at zero (planning/scaling.py cold_start_limit_seconds)."""
    return ANSWER_SECONDS + (cold_start_limit_s if scales_to_zero else 0)


def listener_port(tls: bool) -> int:
    """The Gateway's (and the load balancer's) port: 443 when the load balancer terminates TLS, else 80
    (planning/endpoint.py nlb_listeners)."""
    return HTTPS_PORT if tls else HTTP_PORT


def proxy_container_port(tls: bool) -> int:
    return listener_port(tls) + WELL_KNOWN_PORT_SHIFT


def in_cluster_url(tls: bool) -> str:
    """The endpoint as pods in the cluster reach it: plain HTTP to the proxies' Service (TLS ends at the NLB)."""
    return f"http://{SERVICE_NAME}.{EG_NAMESPACE}.svc.cluster.local:{listener_port(tls)}/v1"


def needs_rate_limits(keys: tuple[ApiKey, ...]) -> bool:
    return any(k.tokens_per_minute for k in keys)


def redis_url() -> str:
    return f"{REDIS}.{EG_NAMESPACE}.svc.cluster.local:{REDIS_PORT}"


# ---------------------------------------------------------------------------------------------- Helm values

def eg_values(rate_limits: bool) -> dict[str, Any]:
    """gateway-helm v1.9.0 values: the AI Gateway's required EnvoyGateway settings (its manifests/envoy-gateway-
    values.yaml at v1.1.0: Backend API on, the extension manager with every xDS hook), the rate limit service on
    Redis when a key has a limit (examples/token_ratelimit/envoy-gateway-values-addon.yaml), and our placement and
    requests. `config.envoyGateway` is EG's EnvoyGateway config file (api/v1alpha1/envoygateway_types.go @ v1.9.0)."""
    provider: dict[str, Any] = {"type": "Kubernetes"}
    config: dict[str, Any] = {
        "gateway": {"controllerName": CONTROLLER_NAME},
        "provider": provider,
        "logging": {"level": {"default": "info"}},
        "extensionApis": {"enableEnvoyPatchPolicy": True, "enableBackend": True},
        "extensionManager": {
            "hooks": {"xdsTranslator": {
                "translation": {part: {"includeAll": True} for part in ("listener", "route", "cluster", "secret")},
                "post": ["Translation", "Cluster", "Route"]}},
            "service": {"fqdn": {"hostname": f"ai-gateway-controller.{AI_NAMESPACE}.svc.cluster.local",
                                 "port": AI_EXTENSION_PORT}},
        },
    }
    if rate_limits:
        provider["kubernetes"] = {"rateLimitDeployment": {
            "replicas": CPU_POOL["envoy-ratelimit"].replicas,
            "pod": {"affinity": CPU_POOL_AFFINITY},
            "container": {"resources": {"requests": CPU_POOL["envoy-ratelimit"].main.as_k8s(),
                                        "limits": {"memory": "256Mi"}}},
        }}
        # Fail open: while the rate limit service is down every request passes unlimited, rather than none at all.
        config["rateLimit"] = {"backend": {"type": "Redis", "redis": {"url": redis_url()}}, "failClosed": False}
    return {
        "config": {"envoyGateway": config},
        "deployment": {
            "replicas": CPU_POOL["envoy-gateway"].replicas,
            "pod": {"affinity": CPU_POOL_AFFINITY},
            "envoyGateway": {"resources": {"requests": CPU_POOL["envoy-gateway"].main.as_k8s(),
                                           "limits": {"memory": "1024Mi"}}},
        },
        "certgen": {"job": {"affinity": CPU_POOL_AFFINITY}},
    }


def ai_gateway_values() -> dict[str, Any]:
    """ai-gateway-helm v1.1.0 values. The chart's pods are hardened already (non-root 65532, no capabilities,
    seccomp RuntimeDefault); here: placement and requests."""
    return {
        "controller": {
            "affinity": CPU_POOL_AFFINITY,
            "resources": {"requests": CPU_POOL["ai-gateway-controller"].main.as_k8s(), "limits": {"memory": "512Mi"}},
        },
    }


# ---------------------------------------------------------------------------------------------- objects

def envoy_proxy_spec(service_annotations: dict[str, str], load_balancer_class: str) -> dict[str, Any]:
    """EnvoyProxy (gateway.envoyproxy.io/v1alpha1): the proxy pods and their Service. Two replicas on the CPU pool,
    spread over nodes (a spot interruption or a node drain never leaves none), a PDB keeping one; the Service of
    type LoadBalancer the AWS Load Balancer Controller turns into an NLB from its annotations."""
    w = CPU_POOL["envoy-proxy"]
    # the class makes the AWS Load Balancer Controller (and not the in-tree cloud provider) own it
    service: dict[str, Any] = {"name": SERVICE_NAME, "type": "LoadBalancer", "annotations": service_annotations,
                               "loadBalancerClass": load_balancer_class}
    return {"provider": {"type": "Kubernetes", "kubernetes": {
        "envoyDeployment": {
            "replicas": w.replicas,
            "pod": {
                "affinity": CPU_POOL_AFFINITY,
                "topologySpreadConstraints": [{
                    "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": PROXY_LABELS}}],
                # EG's containers set non-root 65532, no capabilities, seccomp RuntimeDefault already
                # (internal/infrastructure/kubernetes/resource DefaultSecurityContext); the pod says it too.
                "securityContext": {"runAsNonRoot": True, "seccompProfile": dict(RUNTIME_DEFAULT_SECCOMP)},
            },
            "container": {"resources": {"requests": w.main.as_k8s(), "limits": {"memory": "1Gi"}}},
        },
        "envoyPDB": {"minAvailable": 1},
        "envoyService": service,
    }}}


def gateway_config_spec() -> dict[str, Any]:
    """GatewayConfig (aigateway.envoyproxy.io/v1beta1): the external processor sidecar's requests and limits."""
    return {"extProc": {"kubernetes": {"resources": {
        "requests": EXTPROC_SIDECAR.as_k8s(), "limits": {"memory": "512Mi"}}}}}


def gateway_spec(tls: bool) -> dict[str, Any]:
    """Gateway: one HTTP listener (TLS, when configured, ends at the NLB), for routes of its own namespace."""
    return {
        "gatewayClassName": GATEWAY_CLASS,
        "listeners": [{"name": "http", "protocol": "HTTP", "port": listener_port(tls),
                       "allowedRoutes": {"namespaces": {"from": "Same"}}}],
        "infrastructure": {"parametersRef": {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy",
                                             "name": GATEWAY}},
    }


def backend_spec(model: RoutedModel) -> dict[str, Any]:
    """EG Backend: the model's in-cluster host (AIServiceBackend takes no Service yet: ai-gateway#902)."""
    return {"type": "Endpoints", "endpoints": [{"fqdn": {"hostname": model.host, "port": model.port}}]}


def ai_service_backend_spec(model: RoutedModel) -> dict[str, Any]:
    return {"schema": {"name": "OpenAI"},
            "backendRef": {"name": model.resource_name, "kind": "Backend", "group": "gateway.envoyproxy.io"}}


def route_spec(models: list[RoutedModel]) -> dict[str, Any]:
    """AIGatewayRoute: one rule per model, matched on the `model` of the request (the `x-ai-eg-model` header the
    external processor sets), with the total tokens of each answer recorded for the rate limits."""
    return {
        "parentRefs": [{"name": GATEWAY, "kind": "Gateway", "group": "gateway.networking.k8s.io"}],
        "rules": [{
            "matches": [{"headers": [{"type": "Exact", "name": "x-ai-eg-model", "value": m.served_model_name}]}],
            "backendRefs": [{"name": m.resource_name}],
            "timeouts": {"request": f"{m.timeout_seconds}s"},
        } for m in models],
        "llmRequestCosts": [{"metadataKey": TOTAL_TOKENS_KEY, "type": "TotalToken"}],
    }


def security_policy_spec(secret_name: str) -> dict[str, Any]:
    """SecurityPolicy: every request to the Gateway needs a key, as OpenAI clients send it (`Authorization: Bearer
    <key>`; Envoy strips the `Bearer ` prefix: EG v1.9.0 site/content/en/latest/tasks/security/apikey-auth.md) or in
    `x-api-key`. The key is removed before the request goes on, and its name forwarded for the rate limits."""
    return {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": GATEWAY}],
        "apiKeyAuth": {
            "credentialRefs": [{"group": "", "kind": "Secret", "name": secret_name}],
            "extractFrom": [{"headers": ["authorization", "x-api-key"]}],
            "forwardClientIDHeader": CLIENT_ID_HEADER,
            "sanitize": True,
        },
    }


def client_traffic_policy_spec() -> dict[str, Any]:
    """ClientTrafficPolicy: room for long prompts, and TCP keepalives on the connections from the NLB every 30 s
    after a minute idle, which keep the NLB's flow to the proxy open (AWS ELB "Connection idle timeout": keepalive
    packets reset it) while a request waits for a model at zero, which sends no byte until it is up. (Envoy's own
    stream idle timeout does not cut that wait: EG gives each route an idle timeout of at least an hour, or its
    request timeout: xds/translator/route.go @ v1.9.0.)"""
    return {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": GATEWAY}],
            "connection": {"bufferLimit": BUFFER_LIMIT},
            "tcpKeepalive": {"idleTime": "60s", "interval": "30s", "probes": 5}}


def longest_wait_seconds(timeouts: list[int]) -> int:
    """The longest a request through the gateway may wait: the longest of the models' timeouts."""
    return max(timeouts, default=ANSWER_SECONDS)


def rate_limit_policy_spec(keys: tuple[ApiKey, ...]) -> dict[str, Any] | None:
    """BackendTrafficPolicy: for each key with a limit, a global rule on its client id counting the answer's total
    tokens (charged when the answer ends, checked when a request arrives: a request over the budget gets 429).
    `shared`: one counter per key across every model; unshared, a Gateway-wide rule counts each route (model) apart
    (EG v1.9.0 api/v1alpha1/ratelimit_types.go, xds/translator/ratelimit.go), and a key would get its limit per
    model."""
    rules = [{
        "clientSelectors": [{"headers": [{"name": CLIENT_ID_HEADER, "type": "Exact", "value": k.name}]}],
        "shared": True,
        "limit": {"requests": k.tokens_per_minute, "unit": "Minute"},
        "cost": {"request": {"from": "Number", "number": 0},
                 "response": {"from": "Metadata",
                              "metadata": {"namespace": AI_METADATA_NAMESPACE, "key": TOTAL_TOKENS_KEY}}},
    } for k in keys if k.tokens_per_minute]
    if not rules:
        return None
    return {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": GATEWAY}],
            "rateLimit": {"type": "Global", "global": {"rules": rules}}}


def redis_deployment(image: str) -> dict[str, Any]:
    """The rate limit counters' Redis: one replica, in memory only (a restart forgets at most a minute's counts)."""
    w = CPU_POOL[REDIS]
    return {
        "replicas": w.replicas,
        "selector": {"matchLabels": REDIS_LABELS},
        "template": {
            "metadata": {"labels": REDIS_LABELS},
            "spec": {
                "automountServiceAccountToken": False,
                "affinity": CPU_POOL_AFFINITY,
                "securityContext": {"runAsUser": REDIS_UID, "runAsGroup": REDIS_UID, "runAsNonRoot": True,
                                    "fsGroup": REDIS_UID, "seccompProfile": dict(RUNTIME_DEFAULT_SECCOMP)},
                "containers": [{
                    "name": "redis",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["--save", "", "--appendonly", "no", "--protected-mode", "no"],
                    "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
                    "resources": {"requests": CPU_POOL[REDIS].main.as_k8s(), "limits": {"memory": "256Mi"}},
                    "securityContext": restricted_container(read_only_root=True),
                    "readinessProbe": {"tcpSocket": {"port": REDIS_PORT}, "periodSeconds": 10},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }],
                "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "64Mi"}}],
            },
        },
    }


def redis_service_spec() -> dict[str, Any]:
    return {"selector": REDIS_LABELS,
            "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": REDIS_PORT, "protocol": "TCP"}]}


def pod_monitor_spec() -> dict[str, Any]:
    """PodMonitor for the proxy pods: Envoy's stats and the AI Gateway's GenAI metrics (token usage, time to first
    token per model), as the AI Gateway's examples/monitoring scrape them."""
    return {
        "selector": {"matchLabels": PROXY_LABELS},
        "namespaceSelector": {"matchNames": [EG_NAMESPACE]},
        "podMetricsEndpoints": [{"port": "metrics", "path": "/stats/prometheus", "interval": "30s"},
                                {"port": "aigw-admin", "path": "/metrics", "interval": "30s"}],
    }


def hostname_command() -> str:
    """The NLB's DNS name, once the AWS Load Balancer Controller has made it (the Service is EG's, not the stack's:
    no stack output can hold it at `pulumi up` time)."""
    return (f"kubectl -n {EG_NAMESPACE} get service {SERVICE_NAME} "
            "-o jsonpath='{.status.loadBalancer.ingress[0].hostname}'")


def url_hint(tls: bool) -> str:
    """How a client outside the cluster names the endpoint."""
    if tls:
        return ("https://<a DNS name of your certificate, a CNAME to the NLB's name from gateway_hostname_command>/v1 "
                "(the NLB's own name is not on the certificate)")
    return "http://<the NLB's name from gateway_hostname_command>/v1"


def api_keys_command(region: str, secret_name: str) -> str:
    return (f"aws secretsmanager get-secret-value --region {region} --secret-id {secret_name} "
            "--query SecretString --output text")

