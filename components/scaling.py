"""Scaling: KEDA, which scales every model's StatefulSet, and the KEDA HTTP add-on, whose interceptor holds a request
to a model at zero until a replica is Ready (Scaling, once); per model its ScaledObject, and for a model reached
through the interceptor its InterceptorRoutes and the Service its URL names (ModelScaling).

What each model scales on is decided in planning/scaling.py. Sources: KEDA 2.20.2 (kedacore/keda @ 68a5b502) and the
HTTP add-on 0.15.0 (kedacore/http-add-on @ 4ea8a863), their docs (kedacore/keda-docs, keda.sh/docs/2.20 and
keda.sh/http-add-on/0.15), and the charts as released (planning/versions.py): only values keys the released charts
have are used. Objects follow the CRDs in ../shared/reference (tests/conformance.py checks them, CEL rules included).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from parts import helm
from planning import versions
from planning.security import pod_security_labels
from planning.catalog import CatalogModel
from planning.models import ModelRequest
from planning.scaling import WAKE_ONLY_CONCURRENCY, can_scale_to_zero, cold_start_limit_seconds, \
    concurrency_target, routed_through_interceptor
from planning.scheduling import CPU_POOL_AFFINITY
from planning.workloads import CPU_POOL

NAMESPACE = versions.KEDA_NAMESPACE
# The add-on's chart names its objects after itself (`.Chart.Name`), whatever the release is called.
ADD_ON = versions.KEDA_HTTP_ADD_ON.name
INTERCEPTOR_SERVICE = f"{ADD_ON}-interceptor-proxy"  # templates/interceptor/service-proxy.yaml
SCALER_SERVICE = f"{ADD_ON}-external-scaler"  # templates/scaler/service.yaml
SCALER_PORT = 9090  # scaler.grpcPort, the chart's default
# The interceptor listens on the port NIM serves on (interceptor.proxy.port), so every model URL ends in :8000/v1.
PROXY_PORT = 8000
CLUSTER_DOMAIN = "svc.cluster.local"  # EKS's cluster domain, as nim.model_url assumes
# Interceptor pods finish in-flight requests on shutdown (a node drain, a spot interruption) for as long as a NIM pod
# does (components/nim.py: 180 s grace): a long generation streaming through it is not cut after the chart's 30 s.
INTERCEPTOR_DRAIN_S = 170
INTERCEPTOR_GRACE_S = 180
# KEDA's HPA behaviour for every model: up at once by one replica a minute (each new replica needs a GPU node and
# minutes to load), down only after five quiet minutes and one replica every two, so a lull never drops every warm
# replica together. KEDA hands it to the HPA it makes (advanced.horizontalPodAutoscalerConfig.behavior).
HPA_BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
    "scaleDown": {"stabilizationWindowSeconds": 300, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]},
}
# KEDA takes over an HPA of the same target if the ScaledObject names it and carries this annotation (KEDA 2.20
# apis/keda/v1alpha1/scaledobject_webhook.go, verifyHpas): a stack upgraded from the plain HPA, which `pulumi up`
# deletes only after creating the ScaledObject, would otherwise be refused by KEDA's webhook.
TRANSFER_HPA = {"scaledobject.keda.sh/transfer-hpa-ownership": "true"}


def keda_values() -> dict[str, Any]:
    """The keda chart's values (keda 2.20.2 values.yaml). Its pods are hardened by default (non-root, seccomp
    RuntimeDefault, no capabilities, read-only root file system); here: their requests and replicas from CPU_POOL,
    the CPU pool, and no image pull on every restart (the tags are pinned)."""
    operator, metrics, webhooks = (CPU_POOL[n] for n in ("keda-operator", "keda-operator-metrics-apiserver",
                                                         "keda-admission-webhooks"))
    return {
        "crds": {"install": True},
        "image": {"pullPolicy": "IfNotPresent"},
        "operator": {"replicaCount": operator.replicas},
        "metricsServer": {"replicaCount": metrics.replicas},
        "webhooks": {"replicaCount": webhooks.replicas},
        "resources": {"operator": {"requests": operator.main.as_k8s()},
                      "metricServer": {"requests": metrics.main.as_k8s()},
                      "webhooks": {"requests": webhooks.main.as_k8s()}},
        "affinity": CPU_POOL_AFFINITY,  # all three; the API server reaches them on 6443 and 9443 (tools/checks.py)
    }


def http_add_on_values() -> dict[str, Any]:
    """The keda-add-ons-http chart's values (0.15.0 as released)."""
    interceptor, scaler = CPU_POOL["keda-add-ons-http-interceptor"], CPU_POOL["keda-add-ons-http-external-scaler"]
    spread = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
               "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "interceptor",
                                                 "app.kubernetes.io/name": "http-add-on"}}}]
    return {
        "crds": {"install": True},
        # Only HTTPScaledObject needs the operator; for an InterceptorRoute it just sets a status condition (0.15.0
        # operator/controllers/http/interceptorroute_controller.go), which neither the interceptor nor the scaler reads.
        "operator": {"replicas": 0},
        "scaler": {"replicas": scaler.replicas, "pullPolicy": "IfNotPresent", "affinity": CPU_POOL_AFFINITY,
                   "resources": {"requests": scaler.main.as_k8s(), "limits": {"cpu": "500m", "memory": "128Mi"}}},
        "interceptor": {
            "replicas": {"min": interceptor.replicas},  # its own ScaledObject (from the chart) adds more under load
            "pullPolicy": "IfNotPresent",
            "proxy": {"port": PROXY_PORT},
            "drainTimeout": f"{INTERCEPTOR_DRAIN_S}s",
            "terminationGracePeriodSeconds": INTERCEPTOR_GRACE_S,
            "affinity": CPU_POOL_AFFINITY,
            "topologySpreadConstraints": spread,
            # every byte of every request to a model at zero passes through it: room above the chart's 0.5 CPU/64Mi
            "resources": {"requests": interceptor.main.as_k8s(), "limits": {"cpu": "1", "memory": "256Mi"}},
        },
        # Added to the chart's fsGroup/supplementalGroups for all its pods, as upstream's own manifests run them
        # (kedacore/http-add-on config/*/deployment.yaml): with the chart's container defaults (no privilege
        # escalation, no capabilities, read-only root) they meet the restricted Pod Security Standard.
        "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    }


def interceptor_host(namespace: str = NAMESPACE) -> str:
    return f"{INTERCEPTOR_SERVICE}.{namespace}.{CLUSTER_DOMAIN}"


def scaler_address(namespace: str = NAMESPACE) -> str:
    """The external scaler's gRPC address, as an external-push trigger names it."""
    return f"{SCALER_SERVICE}.{namespace}:{SCALER_PORT}"


@dataclass
class ScalingArgs:
    # On `up` the CPU NodePool exists before KEDA's pods, which prefer it; on destroy they go first.
    cpu_node_pool: k8s.apiextensions.CustomResource
    http_add_on: bool  # planning/scaling.needs_interceptor: a model at zero, or monitoring off


class Scaling(pulumi.ComponentResource):
    """KEDA and (when a model is reached through it) the HTTP add-on, in namespace `keda`."""

    ready: list[pulumi.Resource]  # what a model's scaling objects wait for, and outlive on destroy

    def __init__(self, name: str, args: ScalingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:Scaling", name, None, opts)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            # every pod in it meets the restricted Pod Security Standard (tests/test_scaling.py renders them)
            metadata={"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "nim-on-eks",
                                                    **pod_security_labels("restricted")}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.keda = helm.release(
            f"{name}-keda", versions.KEDA, name="keda", namespace=NAMESPACE, values=keda_values(),
            parent=self, depends_on=[self.namespace, args.cpu_node_pool],
        )
        # The add-on's chart holds a ScaledObject (for its interceptor): KEDA's CRDs and webhook first, and on destroy
        # KEDA outlives it, or that object's finalizer would never be removed.
        self.http_add_on = helm.release(
            f"{name}-http-add-on", versions.KEDA_HTTP_ADD_ON, name=ADD_ON, namespace=NAMESPACE,
            values=http_add_on_values(), parent=self, depends_on=[self.namespace, args.cpu_node_pool, self.keda],
        ) if args.http_add_on else None
        self.ready = [self.keda, *([self.http_add_on] if self.http_add_on else [])]
        self.register_outputs({})


# ---------------------------------------------------------------------------------------------------- per model


def prometheus_triggers(model: ModelRequest, namespace: str, server: str) -> list[dict[str, Any]]:
    """KEDA `prometheus` triggers on NIM's metrics, summed over the model's replicas (the Service's series, as its
    ServiceMonitor scrapes them): each query returns one series, or none at zero replicas, which reads as 0. With
    metricType AverageValue the HPA divides by the replica count, so the threshold is a per-replica target."""
    selector = f'namespace="{namespace}",service="{model.k8s_name}"'
    kv = f"{model.target_kv_cache_percent / 100:g}"
    triggers = [{
        "type": "prometheus", "name": "kv-cache", "metricType": "AverageValue",
        # Active (keeping a model awake) only above its target: a cache that holds some blocks while idle never
        # stops a model from going to zero; requests wake and keep it (the interceptor, below).
        "metadata": {"serverAddress": server, "query": f"sum(gpu_cache_usage_perc{{{selector}}})",
                     "threshold": kv, "activationThreshold": kv, "ignoreNullValues": "true"},
    }]
    if model.target_requests_running is not None:
        triggers.append({
            "type": "prometheus", "name": "requests-running", "metricType": "AverageValue",
            # active while any request runs, whichever way it came (a port-forward to the Service too)
            "metadata": {"serverAddress": server, "query": f"sum(num_requests_running{{{selector}}})",
                         "threshold": str(model.target_requests_running), "ignoreNullValues": "true"},
        })
    return triggers


def interceptor_trigger(route: str) -> dict[str, Any]:
    """The HTTP add-on's push trigger: requests held or in flight through the interceptor on `route`; any request
    makes it active, and the scaler pushes that within 200 ms (scaler.streamInterval), so a model wakes at once."""
    return {"type": "external-push", "name": "interceptor",
            "metadata": {"scalerAddress": scaler_address(), "interceptorRoute": route}}


def scaled_object_spec(model: ModelRequest, triggers: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": model.k8s_name},
        "minReplicaCount": model.min_replicas,
        "maxReplicaCount": model.max_replicas,
        "advanced": {
            # Deleting the ScaledObject (destroy) leaves the replica count as it is: true would scale a model at zero
            # back to its original count, launching a GPU node while everything is being deleted.
            "restoreToOriginalReplicaCount": False,
            # The HPA KEDA makes is named like the model (the alerts and the dashboard find it by that name).
            "horizontalPodAutoscalerConfig": {"name": model.k8s_name, "behavior": HPA_BEHAVIOR},
        },
        "triggers": triggers,
    }
    if can_scale_to_zero(model):
        idle = model.idle_minutes * 60
        # To zero once no trigger was active for the idle time, also right after `pulumi up` (initialCooldownPeriod:
        # a freshly started model stays warm as long); KEDA checks every 30 s (its default pollingInterval).
        spec.update(cooldownPeriod=idle, initialCooldownPeriod=idle, pollingInterval=30)
    return spec


def models_placeholder(served_model_name: str) -> str:
    """What `GET /v1/models` answers while the model has no Ready replica: the model list NIM would give (the
    OpenAI list shape), so clients that list models (Open WebUI on every page load) neither wait nor wake it."""
    return json.dumps({"object": "list", "data": [{"id": served_model_name, "object": "model",
                                                   "owned_by": "system", "root": served_model_name}]})


def proxy_hosts(proxy: str, namespace: str) -> list[str]:
    """Every Host a client of the model's URL may send (the name it dialled; the interceptor drops the port)."""
    return [proxy, f"{proxy}.{namespace}", f"{proxy}.{namespace}.svc", f"{proxy}.{namespace}.{CLUSTER_DOMAIN}"]


@dataclass
class ModelScalingArgs:
    model: ModelRequest
    entry: CatalogModel  # the served name, the cache size a cold start reads
    namespace: str
    labels: dict[str, str]
    monitoring: bool  # with it, the Prometheus triggers; without, the interceptor for every model
    # On destroy every scaler goes before its target, and before KEDA and the add-on (whose controllers remove the
    # ScaledObject's finalizer); on up, after all of them.
    statefulset: k8s.apps.v1.StatefulSet
    service: k8s.core.v1.Service  # the ClusterIP Service the interceptor forwards to (ready endpoints only)
    scaling: Scaling
    prometheus_address: str | None = None  # the Prometheus the triggers query (with monitoring)
    metrics_pipeline: list[pulumi.Resource] = field(default_factory=list)  # Prometheus, which the triggers need


class ModelScaling(pulumi.ComponentResource):
    """A model's ScaledObject, and when it is reached through the interceptor its InterceptorRoutes and the
    ExternalName Service its URL names."""

    host: str  # the in-cluster Service name (in the model's namespace) its URL uses
    routed: bool

    def __init__(self, name: str, args: ModelScalingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:ModelScaling", name, None, opts)
        m, ns, app = args.model, args.namespace, args.model.k8s_name
        if args.monitoring and args.prometheus_address is None:
            raise ValueError("ModelScalingArgs.prometheus_address is required with monitoring")
        if not args.scaling.http_add_on and routed_through_interceptor(m, args.monitoring):
            raise ValueError(f"{m.name} is reached through the interceptor, but Scaling has no HTTP add-on")
        self.routed = routed_through_interceptor(m, args.monitoring)
        after = [args.statefulset, args.service, *args.scaling.ready, *args.metrics_pipeline]

        # The model's URL names the ClusterIP Service, or for a routed model an alias of the interceptor.
        self.host = f"{app}-proxy" if self.routed else app
        triggers = prometheus_triggers(m, ns, args.prometheus_address) if args.monitoring else []
        routes: list[pulumi.Resource] = []
        if self.routed:
            hosts = proxy_hosts(self.host, ns)
            target = {"service": app, "port": PROXY_PORT}  # NIM's port on the ClusterIP Service
            limit = cold_start_limit_seconds(args.entry.cache_gib)
            # No `pulumi up` waits for a status of these: the add-on's operator (which would set it) does not run.
            meta = {"namespace": ns, "labels": args.labels, "annotations": {"pulumi.com/skipAwait": "true"}}
            in_order = pulumi.ResourceOptions(parent=self, depends_on=after)
            routes.append(k8s.apiextensions.CustomResource(
                f"{name}-route",
                api_version="http.keda.sh/v1beta1", kind="InterceptorRoute",
                metadata={"name": app, **meta},
                spec={
                    # The ClusterIP Service: only Ready pods are its endpoints, and the interceptor forwards once one
                    # is (the headless Service publishes unready pods: a request would reach a model still loading).
                    "target": target,
                    "rules": [{"hosts": hosts}],
                    "scalingMetric": {"concurrency": {"targetValue": concurrency_target(m.target_requests_running,
                                                                                        args.monitoring)}},
                    "timeouts": {
                        # A request to a model at zero waits at most this long for a Ready replica (a GPU node, the
                        # image, the weights, NIM's start), then gets 504 Gateway Timeout instead of a hang.
                        "readiness": f"{limit}s",
                        # Off: a non-streamed answer sends its headers only when its last token is done, which can
                        # take many minutes; a hung NIM is restarted by its liveness probe, which ends the request.
                        "responseHeader": "0s",
                    },
                },
                opts=in_order,
            ))
            # `GET /v1/models` gets the model list at once while the model is at zero, without waking it; with a
            # Ready replica it is forwarded like any request. Its concurrency wakes nothing: no ScaledObject reads it.
            routes.append(k8s.apiextensions.CustomResource(
                f"{name}-models-route",
                api_version="http.keda.sh/v1beta1", kind="InterceptorRoute",
                metadata={"name": f"{app}-models", **meta},
                spec={
                    "target": target,
                    "rules": [{"hosts": hosts, "paths": [{"value": "/v1/models"}]}],
                    "scalingMetric": {"concurrency": {"targetValue": WAKE_ONLY_CONCURRENCY}},
                    "coldStart": {"placeholder": {"response": {
                        "statusCode": 200, "headers": {"Content-Type": "application/json"},
                        "body": models_placeholder(args.entry.served_model_name)}}},
                },
                opts=in_order,
            ))
            triggers = [interceptor_trigger(app), *triggers]

        # The add-on's docs: the route exists before the ScaledObject that reads it (keda.sh/http-add-on/0.15,
        # user-guide/autoscale-an-app).
        self.scaled_object = k8s.apiextensions.CustomResource(
            f"{name}-scaledobject",
            api_version="keda.sh/v1alpha1", kind="ScaledObject",
            metadata={"name": app, "namespace": ns, "labels": args.labels, "annotations": TRANSFER_HPA},
            spec=scaled_object_spec(m, triggers),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*after, *routes]),
        )

        self.proxy_service = None
        if self.routed:
            # A DNS alias of the interceptor (an ExternalName keeps the name the client dialled in its Host header,
            # which the routes match). Made last, so the URL works as soon as it exists.
            self.proxy_service = k8s.core.v1.Service(
                f"{name}-proxy",
                metadata={"name": self.host, "namespace": ns, "labels": args.labels},
                spec={"type": "ExternalName", "externalName": interceptor_host()},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*routes, self.scaled_object]),
            )
        self.register_outputs({"host": self.host})
