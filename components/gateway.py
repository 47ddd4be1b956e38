"""The authenticated OpenAI-compatible endpoint: Envoy Gateway, the Envoy AI Gateway, one route per model, API keys
kept in AWS Secrets Manager, per-key token limits. What each object is and why: planning/gateway.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.loadbalancer import LoadBalancerController
from components.waiters import LoadBalancersReleased
from parts import helm
from parts.secrets import kept_secret
from planning import gateway as gw
from planning import versions
from planning.security import by_digest, pod_security_labels

LABELS = {"app.kubernetes.io/part-of": "nim-on-eks"}
READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"
KEYS_SECRET = "api-keys"  # the Kubernetes Secret the SecurityPolicy reads: client id -> key


@dataclass
class GatewayArgs:
    cluster_name: str
    region: str
    models: list[gw.RoutedModel]
    keys: tuple[gw.ApiKey, ...]
    tls: bool  # the load balancer terminates TLS (certificate_arn): the listener is 443
    service_annotations: dict[str, str]  # the NLB the AWS Load Balancer Controller makes for the proxies' Service
    load_balancer_class: str
    # On `up` the CPU NodePool (where every pod of the gateway runs) and the load balancer controller exist first; on
    # destroy the Gateway, its class and EnvoyProxy go first, then the wait for their NLB's deletion (while EG, which
    # deletes the proxies' Service, and the controller, which deletes the NLB, still run), then EG and the rest.
    cpu_node_pool: k8s.apiextensions.CustomResource
    load_balancer: LoadBalancerController
    kubeconfig: pulumi.Input[str]
    model_resources: list[pulumi.Resource]  # the models (their Services and scaling routes) the backends name
    monitor_labels: dict[str, str] | None = None  # None: no Prometheus Operator, no PodMonitor
    image_digests: dict[str, str] = field(default_factory=dict)  # config image_digests: Redis by digest when given
    metrics_pipeline: list[pulumi.Resource] = field(default_factory=list)


class Gateway(pulumi.ComponentResource):
    """Envoy Gateway and the AI Gateway (Helm), the Gateway and its routes, the API keys and their policies."""

    url_in_cluster: str
    open_webui_key: pulumi.Output[str]
    namespaces: list[k8s.core.v1.Namespace]

    def __init__(self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:Gateway", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def namespace(ns: str, **labels: str) -> k8s.core.v1.Namespace:
            # every pod in them meets the restricted Pod Security Standard: the charts' (tests/test_gateway.py renders
            # them) and those EG and the AI Gateway create at run time (planning/gateway.py says where checked)
            return k8s.core.v1.Namespace(f"{name}-{ns}", metadata={
                "name": ns, "labels": {**LABELS, **pod_security_labels("restricted"), **labels}}, opts=child)

        # The proxies' pods are Ready only once the NLB sees them healthy (the AWS Load Balancer Controller's readiness
        # gate, injected in namespaces with this label: v3.5.0 docs/deploy/pod_readiness_gate.md), so a rollout or a
        # node replacement never leaves the NLB without a healthy target.
        eg_ns = namespace(gw.EG_NAMESPACE, **{READINESS_GATE_LABEL: "enabled"})
        ai_ns, routes_ns = namespace(gw.AI_NAMESPACE), namespace(gw.ROUTES_NAMESPACE)
        self.namespaces = [eg_ns, ai_ns, routes_ns]
        rate_limits = gw.needs_rate_limits(args.keys)

        # --- the controllers
        self.envoy_gateway = helm.release(
            f"{name}-envoy-gateway", versions.ENVOY_GATEWAY, name=gw.EG_RELEASE, namespace=gw.EG_NAMESPACE,
            values=gw.eg_values(rate_limits), parent=self, depends_on=[eg_ns, args.cpu_node_pool])
        ai_crds = helm.release(
            f"{name}-ai-gateway-crds", versions.AI_GATEWAY_CRDS, name=gw.AI_CRDS_RELEASE, namespace=gw.AI_NAMESPACE,
            values={}, parent=self, depends_on=[ai_ns, args.cpu_node_pool])  # no pods, but every release is held to it
        self.ai_gateway = helm.release(
            f"{name}-ai-gateway", versions.AI_GATEWAY, name=gw.AI_RELEASE, namespace=gw.AI_NAMESPACE,
            # after EG, as its install guide orders them: the controller watches EG's Backend and HTTPRouteFilter
            values=gw.ai_gateway_values(), parent=self,
            depends_on=[ai_ns, ai_crds, self.envoy_gateway, args.cpu_node_pool])
        controllers = [self.envoy_gateway, ai_crds, self.ai_gateway]
        # Destroy: deleted once no Service holds an NLB any more; it outlives what makes the proxies' Service (the
        # Gateway, its class, EnvoyProxy) and goes before EG and the load balancer controller.
        self.load_balancers_released = LoadBalancersReleased(
            f"{name}-load-balancers-released", cluster_name=args.cluster_name, kubeconfig=args.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[
                self.envoy_gateway, args.load_balancer.release, args.load_balancer.load_balancers_released]))
        load_balancer_ready = [args.load_balancer.release, self.load_balancers_released]

        if rate_limits:
            # The rate limit service's counters; EG starts that service itself when its config names a backend.
            redis = k8s.apps.v1.Deployment(
                f"{name}-redis", metadata={"name": gw.REDIS, "namespace": gw.EG_NAMESPACE,
                                           "labels": {**LABELS, **gw.REDIS_LABELS}},
                spec=gw.redis_deployment(by_digest(versions.REDIS_IMAGE, args.image_digests)),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[eg_ns, args.cpu_node_pool]))
            k8s.core.v1.Service(
                f"{name}-redis", metadata={"name": gw.REDIS, "namespace": gw.EG_NAMESPACE, "labels": LABELS},
                spec=gw.redis_service_spec(), opts=pulumi.ResourceOptions(parent=self, depends_on=[redis]))

        # --- the API keys: generated here, kept in Secrets Manager for people, in a Kubernetes Secret for Envoy
        keys = {k.name: random.RandomPassword(f"{name}-key-{k.name}", length=gw.KEY_LENGTH, special=False,
                                              keepers={"rotation": str(k.rotation)}, opts=child)
                for k in args.keys}
        webui_key = random.RandomPassword(f"{name}-key-{gw.OPEN_WEBUI_CLIENT}", length=gw.KEY_LENGTH,
                                          special=False, opts=child)
        self.keys_secret = kept_secret(
            f"{name}-api-keys", name_prefix=f"{args.cluster_name}-api-keys-",
            description=f"API keys of the nim-on-eks endpoint of {args.cluster_name} (name -> key)",
            value=pulumi.Output.json_dumps({n: p.result for n, p in keys.items()}), parent=self)
        credentials = k8s.core.v1.Secret(
            f"{name}-api-keys",
            metadata={"name": KEYS_SECRET, "namespace": gw.ROUTES_NAMESPACE, "labels": LABELS},
            type="Opaque",
            string_data={n: pulumi.Output.secret(p.result)
                         for n, p in {**keys, gw.OPEN_WEBUI_CLIENT: webui_key}.items()},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[routes_ns]))
        self.open_webui_key = pulumi.Output.secret(webui_key.result)

        # --- the Gateway and how its proxies run; on destroy these go first, then the load balancer is waited for
        in_routes = pulumi.ResourceOptions(parent=self, depends_on=[routes_ns, *controllers, *load_balancer_ready])
        gateway_class = k8s.apiextensions.CustomResource(
            f"{name}-class", api_version="gateway.networking.k8s.io/v1", kind="GatewayClass",
            metadata={"name": gw.GATEWAY_CLASS, "labels": LABELS},
            spec={"controllerName": gw.CONTROLLER_NAME},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*controllers, *load_balancer_ready]))
        envoy_proxy = k8s.apiextensions.CustomResource(
            f"{name}-envoy-proxy", api_version="gateway.envoyproxy.io/v1alpha1", kind="EnvoyProxy",
            metadata={"name": gw.GATEWAY, "namespace": gw.ROUTES_NAMESPACE, "labels": LABELS},
            spec=gw.envoy_proxy_spec(args.service_annotations, args.load_balancer_class), opts=in_routes)
        gateway_config = k8s.apiextensions.CustomResource(
            f"{name}-gateway-config", api_version="aigateway.envoyproxy.io/v1beta1", kind="GatewayConfig",
            metadata={"name": gw.GATEWAY, "namespace": gw.ROUTES_NAMESPACE, "labels": LABELS},
            spec=gw.gateway_config_spec(), opts=in_routes)
        self.gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway", api_version="gateway.networking.k8s.io/v1", kind="Gateway",
            metadata={"name": gw.GATEWAY, "namespace": gw.ROUTES_NAMESPACE, "labels": LABELS,
                      # the AI Gateway's sidecar settings (ai_gateway_route.go GatewayConfigAnnotationKey)
                      "annotations": {"aigateway.envoyproxy.io/gateway-config": gw.GATEWAY}},
            spec=gw.gateway_spec(args.tls),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[routes_ns, *controllers, *load_balancer_ready,
                                                                 gateway_class, envoy_proxy, gateway_config]))
        after_gateway = pulumi.ResourceOptions(parent=self, depends_on=[routes_ns, *controllers, self.gateway])

        # --- who may call, and how much: every request needs a key; keys with a limit are limited
        k8s.apiextensions.CustomResource(
            f"{name}-api-key-auth", api_version="gateway.envoyproxy.io/v1alpha1", kind="SecurityPolicy",
            metadata={"name": "api-keys", "namespace": gw.ROUTES_NAMESPACE, "labels": LABELS},
            spec=gw.security_policy_spec(KEYS_SECRET),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[routes_ns, *controllers, self.gateway, credentials]))
        k8s.apiextensions.CustomResource(
            f"{name}-buffer", api_version="gateway.envoyproxy.io/v1alpha1", kind="ClientTrafficPolicy",
            metadata={"name": "request-buffer", "namespace": gw.ROUTES_NAMESPACE, "labels": LABELS},
            spec=gw.client_traffic_policy_spec(), opts=after_gateway)
        if (limits := gw.rate_limit_policy_spec(args.keys)) is not None:
            k8s.apiextensions.CustomResource(
                f"{name}-token-limits", api_version="gateway.envoyproxy.io/v1alpha1", kind="BackendTrafficPolicy",
                metadata={"name": "token-limits", "namespace": gw.ROUTES_NAMESPACE, "labels": LABELS},
                spec=limits, opts=after_gateway)

        # --- one backend per model, one route for all of them
        to_models = pulumi.ResourceOptions(parent=self, depends_on=[routes_ns, *controllers, *args.model_resources])
        backends = []
        for m in args.models:
            backend = k8s.apiextensions.CustomResource(
                f"{name}-{m.resource_name}-backend", api_version="gateway.envoyproxy.io/v1alpha1", kind="Backend",
                metadata={"name": m.resource_name, "namespace": gw.ROUTES_NAMESPACE, "labels": LABELS},
                spec=gw.backend_spec(m), opts=to_models)
            backends.append(k8s.apiextensions.CustomResource(
                f"{name}-{m.resource_name}", api_version="aigateway.envoyproxy.io/v1beta1", kind="AIServiceBackend",
                metadata={"name": m.resource_name, "namespace": gw.ROUTES_NAMESPACE, "labels": LABELS},
                spec=gw.ai_service_backend_spec(m),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*controllers, backend])))
        k8s.apiextensions.CustomResource(
            f"{name}-route", api_version="aigateway.envoyproxy.io/v1beta1", kind="AIGatewayRoute",
            metadata={"name": "models", "namespace": gw.ROUTES_NAMESPACE, "labels": LABELS},
            spec=gw.route_spec(args.models),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*controllers, self.gateway, *backends]))

        if args.monitor_labels is not None:
            k8s.apiextensions.CustomResource(
                f"{name}-metrics", api_version="monitoring.coreos.com/v1", kind="PodMonitor",
                metadata={"name": "nim-gateway", "namespace": gw.EG_NAMESPACE,
                          "labels": {**LABELS, **args.monitor_labels}},
                spec=gw.pod_monitor_spec(),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[eg_ns, *args.metrics_pipeline]))

        self.url_in_cluster = gw.in_cluster_url(args.tls)
        self.api_keys_secret_name = self.keys_secret.name
        self.api_keys_command = self.keys_secret.name.apply(lambda n: gw.api_keys_command(args.region, n))
        self.register_outputs({"url_in_cluster": self.url_in_cluster,
                               "api_keys_secret_name": self.api_keys_secret_name})
