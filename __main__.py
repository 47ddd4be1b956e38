"""nim-on-eks: NVIDIA NIM LLM inference on Amazon EKS, in one `pulumi up`.

Composition only; it reads like the architecture diagram:
config (and its cost) -> network -> cluster -> (capacity, storage, load balancer, monitoring, scaling) -> one NimModel per model
-> Open WebUI, AIPerf -> network policies -> outputs. Each component gets its providers once, in opts; what it waits for is named
in its Args.
"""

import pulumi
import pulumi_aws as aws

from components.alerts import receiver_warning
from components.cluster import Cluster, ClusterArgs
from components.gateway import Gateway, GatewayArgs
from components.karpenter import Karpenter, KarpenterArgs
from components.loadbalancer import LoadBalancerController, LoadBalancerControllerArgs
from components.monitoring import NAMESPACE as monitoring_namespace, Monitoring, MonitoringArgs
from components.netpol import NetworkPolicies, NetworkPoliciesArgs
from components.network import Network, NetworkArgs, pick_azs
from components.nim import NimModel, NimModelArgs, NimNamespace, NimNamespaceArgs, first_start_minutes
from components.scaling import Scaling, ScalingArgs
from components.storage import Storage, StorageArgs
from components.webui import NAMESPACE as webui_namespace, AIPerf, AIPerfArgs, OpenWebUI, OpenWebUIArgs
from planning import aiperf as aiperf_commands
from planning.catalog import load_catalog
from planning.config import load_config
from planning.cost import cost_warnings, estimate
from planning.endpoint import LOAD_BALANCER_CLASS, endpoint_warnings, nlb_service_annotations
from planning.flows import Namespaces
from planning.gateway import (RoutedModel, answer_timeout_seconds, hostname_command, longest_wait_seconds,
                              needs_rate_limits, url_hint)
from planning.scaling import can_scale_to_zero, cold_start_limit_seconds, needs_interceptor, scaling_warnings

# --- config: every problem is reported here, before anything is created ---------------------------------
catalog = load_catalog()
cfg, ngc_api_key = load_config(catalog)

# --- what it costs, known before anything is created (warns over hourly_budget) --------------------------
cost = estimate(cfg)
for warning in cost_warnings(cost, cfg):
    pulumi.log.warn(warning)
# --- what models scale on without monitoring -------------------------------------------------------------
for warning in scaling_warnings(cfg.models, cfg.monitoring):
    pulumi.log.warn(warning)
# --- a deprecated config key (genai_perf, now aiperf) --------------------------------------------------------
for warning in cfg.warnings:
    pulumi.log.warn(warning)
# --- where alerts go (nowhere, without alert_email) -------------------------------------------------------
if alerts_warning := receiver_warning(cfg.monitoring, cfg.alerts.email):
    pulumi.log.warn(alerts_warning)
# --- how long a request through the gateway may wait for its model (a cold start, then the answer) -----------------
answer_timeouts = [answer_timeout_seconds(can_scale_to_zero(m),
                                          cold_start_limit_seconds(catalog.models[m.name].cache_gib))
                   for m in cfg.models]
# --- a public endpoint without TLS; a TLS one the NLB may close while a request waits --------------------------
cold_start_wait = max((t for m, t in zip(cfg.models, answer_timeouts) if can_scale_to_zero(m)), default=0)
for warning in endpoint_warnings(cfg.endpoint, cold_start_wait) if cfg.gateway else []:
    pulumi.log.warn(warning)

aws_provider = aws.Provider(
    "aws", region=cfg.region, default_tags=aws.ProviderDefaultTagsArgs(tags=cfg.aws_tags)
)


def providers(*given: pulumi.ProviderResource) -> pulumi.ResourceOptions:
    """A component's providers, given once: every resource inside takes the one of its package from its parent.
    A fresh options object per component, since the SDK writes the resolved providers back into it."""
    return pulumi.ResourceOptions(providers=list(given))


zones = aws.get_availability_zones(
    state="available",
    filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
    opts=pulumi.InvokeOptions(provider=aws_provider),
)
azs = pick_azs(zones.names, zones.zone_ids, cfg.network.availability_zones)
account = aws.get_caller_identity(opts=pulumi.InvokeOptions(provider=aws_provider))
partition = aws.get_partition(opts=pulumi.InvokeOptions(provider=aws_provider))

# --- network ---------------------------------------------------------------------------------------------
network = Network(
    cfg.cluster_name,
    NetworkArgs(
        cluster_name=cfg.cluster_name,
        region=cfg.region,
        settings=cfg.network,
        azs=azs,
    ),
    opts=providers(aws_provider),
)

# --- cluster ---------------------------------------------------------------------------------------------
cluster = Cluster(
    cfg.cluster_name,
    ClusterArgs(
        cluster_name=cfg.cluster_name,
        version=cfg.eks_version,
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        public_subnet_ids=network.public_subnet_ids,
        core=cfg.core,
        logs=cfg.logs,
        partition=partition.partition,
        admin_arns=cfg.cluster_admins,
        tags=cfg.aws_tags,
        network_egress=network.egress,
    ),
    opts=providers(aws_provider),  # the cluster makes the Kubernetes provider itself
)
# Every component after the cluster: AWS resources through the AWS provider, Kubernetes objects into this cluster.

# --- capacity: Karpenter launches (spot-first) GPU nodes for the models, CPU nodes for everything else ----------
capacity = Karpenter(
    f"{cfg.cluster_name}-karpenter",
    KarpenterArgs(
        cluster_name=cfg.cluster_name,
        eks_cluster_name=cluster.cluster_name,
        region=cfg.region,
        account_id=account.account_id,
        partition=partition.partition,
        cluster_security_group_id=cluster.cluster_security_group_id,
        gpu=cfg.gpu,
        cpu=cfg.cpu,
        pod_identity_agent=cluster.pod_identity_agent,
        tags=cfg.aws_tags,
        image_digests=cfg.image_digests,
    ),
    opts=providers(aws_provider, cluster.provider),
)

# --- storage: the EFS model cache every replica shares, and gp3 block storage --------------------------------
storage = Storage(
    f"{cfg.cluster_name}-storage",
    StorageArgs(
        cluster_name=cfg.cluster_name,
        eks_cluster_name=cluster.cluster_name,
        partition=partition.partition,
        vpc_id=network.vpc_id,
        vpc_cidr=cfg.network.vpc_cidr,
        private_subnet_ids=network.private_subnet_ids,
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer=cluster.oidc_issuer,
        kubeconfig=cluster.kubeconfig,
        pod_identity_agent=cluster.pod_identity_agent,
        efs=cfg.efs,
    ),
    opts=providers(aws_provider, cluster.provider),
)

# --- load balancer: the AWS Load Balancer Controller makes the gateway's NLB, and deletes it before the VPC goes ----
load_balancer = (LoadBalancerController(
    f"{cfg.cluster_name}-load-balancer",
    LoadBalancerControllerArgs(
        cluster_name=cfg.cluster_name,
        eks_cluster_name=cluster.cluster_name,
        region=cfg.region,
        partition=partition.partition,
        vpc_id=network.vpc_id,
        kubeconfig=cluster.kubeconfig,
        pod_identity_agent=cluster.pod_identity_agent,
        cpu_node_pool=capacity.cpu_node_pool,
        tags=cfg.program_tags,
    ),
    opts=providers(aws_provider, cluster.provider),
) if cfg.gateway else None)  # only the gateway's Service asks for a load balancer

# --- monitoring: Prometheus (which the models' scaling queries), Grafana, the NIM dashboard, GPU metrics -----
monitoring = (
    Monitoring(
        f"{cfg.cluster_name}-monitoring",
        MonitoringArgs(
            cluster_name=cfg.cluster_name,
            region=cfg.region,
            nim_namespace=cfg.nim_namespace,
            storage_class=storage.gp3_storage_class,
            volumes_released=storage.volumes_released,
            prometheus=cfg.prometheus,
            alerts=cfg.alerts,
            model_first_start_minutes=max(first_start_minutes(catalog.models[m.name].cache_gib) for m in cfg.models),
            model_cold_start_minutes=max((cold_start_limit_seconds(catalog.models[m.name].cache_gib) // 60
                                          for m in cfg.models if can_scale_to_zero(m)), default=0),
            cpu_node_pool=capacity.cpu_node_pool,
            gpu_node_pool=capacity.gpu_node_pool,
            eks_cluster_name=cluster.cluster_name,
            image_digests=cfg.image_digests,
        ),
        opts=providers(aws_provider, cluster.provider),
    )
    if cfg.monitoring
    else None
)

# --- scaling: KEDA scales every model; the HTTP add-on's interceptor wakes a model at zero on its first request ----
scaling = Scaling(
    f"{cfg.cluster_name}-scaling",
    ScalingArgs(cpu_node_pool=capacity.cpu_node_pool, http_add_on=needs_interceptor(cfg.models, cfg.monitoring)),
    opts=providers(cluster.provider),
)

# --- one NimModel per configured model -------------------------------------------------------------------------
nim_namespace = NimNamespace(
    f"{cfg.cluster_name}-nim",
    NimNamespaceArgs(namespace=cfg.nim_namespace, ngc_api_key=ngc_api_key),
    opts=providers(cluster.provider),
)
models = [
    NimModel(
        f"{cfg.cluster_name}-{model.k8s_name}",
        NimModelArgs(
            model=model,
            entry=catalog.models[model.name],
            namespace=nim_namespace,
            storage_class=storage.efs_storage_class,
            scaling=scaling,
            service_monitor_labels=monitoring.monitor_labels if monitoring else None,
            volumes_released=storage.volumes_released,
            gpu_node_pool=capacity.gpu_node_pool,
            cpu_node_pool=capacity.cpu_node_pool,
            device_plugin=capacity.device_plugin,
            metrics_pipeline=monitoring.ready if monitoring else [],
            prometheus_address=monitoring.prometheus_address if monitoring else None,
            image_digests=cfg.image_digests,
        ),
        opts=providers(cluster.provider),
    )
    for model in cfg.models
]

# --- one authenticated OpenAI-compatible endpoint for every model, routed by the request's `model` ----------------
routed_models = [RoutedModel(m.served_model_name, spec.k8s_name, m.host, m.port, timeout)
                 for m, spec, timeout in zip(models, cfg.models, answer_timeouts)]
gateway = (
    Gateway(
        f"{cfg.cluster_name}-gateway",
        GatewayArgs(
            cluster_name=cfg.cluster_name,
            region=cfg.region,
            models=routed_models,
            keys=cfg.api_keys,
            tls=bool(cfg.endpoint.certificate_arn),
            service_annotations=nlb_service_annotations(cfg.endpoint, cfg.program_tags,
                                                        idle_timeout_seconds=longest_wait_seconds(answer_timeouts)),
            load_balancer_class=LOAD_BALANCER_CLASS,
            cpu_node_pool=capacity.cpu_node_pool,
            load_balancer=load_balancer,
            kubeconfig=cluster.kubeconfig,
            model_resources=models,
            monitor_labels=monitoring.monitor_labels if monitoring else None,
            metrics_pipeline=monitoring.ready if monitoring else [],
            image_digests=cfg.image_digests,
        ),
        opts=providers(aws_provider, cluster.provider),
    )
    if cfg.gateway and load_balancer
    else None
)

# --- try and measure the models ------------------------------------------------------------------------------
webui = (
    OpenWebUI(
        f"{cfg.cluster_name}-open-webui",
        OpenWebUIArgs(
            model_urls=[gateway.url_in_cluster] if gateway else [m.url for m in models],
            api_key=gateway.open_webui_key if gateway else None,
            storage_class=storage.gp3_storage_class,
            volumes_released=storage.volumes_released,
            cpu_node_pool=capacity.cpu_node_pool,
            image_digests=cfg.image_digests,
        ),
        opts=providers(cluster.provider),
    )
    if cfg.open_webui
    else None
)
benchmark = (
    AIPerf(
        f"{cfg.cluster_name}-aiperf",
        AIPerfArgs(namespace=nim_namespace, cpu_node_pool=capacity.cpu_node_pool, image_digests=cfg.image_digests),
        opts=providers(cluster.provider),
    )
    if cfg.aiperf
    else None
)

# --- network policies: default-deny ingress in every namespace the program owns, and the flows it needs ----------
network_policies = NetworkPolicies(
    f"{cfg.cluster_name}-network-policies",
    NetworkPoliciesArgs(
        namespaces=Namespaces(
            nim=cfg.nim_namespace, vpc_cidr=cfg.network.vpc_cidr,
            monitoring=monitoring_namespace if monitoring else None,
            open_webui=webui_namespace if webui else None,
            aiperf=bool(benchmark), interceptor=needs_interceptor(cfg.models, cfg.monitoring),
            gateway=bool(gateway), gateway_tls=bool(cfg.endpoint.certificate_arn),
            rate_limits=bool(gateway) and needs_rate_limits(cfg.api_keys),
        ),
        namespace_resources=[nim_namespace.namespace, scaling.namespace,
                             *([monitoring.namespace] if monitoring else []), *([webui.namespace] if webui else []),
                             *(gateway.namespaces if gateway else [])],
    ),
    opts=providers(cluster.provider),
)

# --- outputs ---------------------------------------------------------------------------------------------
pulumi.export("cluster_name", cfg.cluster_name)
pulumi.export("configure_kubectl", f"aws eks --region {cfg.region} update-kubeconfig --name {cfg.cluster_name}")
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("vpc_id", network.vpc_id)
pulumi.export("model_cache_file_system_id", storage.file_system.id)
if monitoring:
    pulumi.export("grafana_secret_name", monitoring.grafana_secret_name)
    pulumi.export("grafana_password_command", monitoring.grafana_password_command)
    pulumi.export("grafana_port_forward", monitoring.grafana_port_forward)
if monitoring and monitoring.alerts:
    pulumi.export("alerts_topic_arn", monitoring.alerts.topic_arn)
    pulumi.export("alerts_email_confirmation",
                  f"AWS sent a confirmation email to {cfg.alerts.email}: alerts are delivered only once it is accepted")
if webui:
    pulumi.export("open_webui_port_forward", webui.port_forward)
if benchmark:
    pulumi.export("aiperf_exec", benchmark.exec)
    # the original blueprint's test against each model, straight to its URL (the interceptor's for one at zero)
    # and the same shape at rising concurrency, to find where time to first token climbs
    for output, command in (("aiperf_commands", aiperf_commands.blueprint_command),
                            ("aiperf_sweep_commands", aiperf_commands.sweep_command)):
        pulumi.export(output, {
            m.served_model_name: command(cfg.nim_namespace, m.served_model_name,
                                         aiperf_commands.base_url(m.host, m.port),
                                         catalog.models[spec.name].tokenizer, spec.k8s_name)
            for m, spec in zip(models, cfg.models)})
    pulumi.export("aiperf_copy_results", benchmark.copy_results)
if gateway:
    pulumi.export("gateway_hostname_command", hostname_command())
    pulumi.export("gateway_url", url_hint(bool(cfg.endpoint.certificate_arn)))
    pulumi.export("gateway_url_in_cluster", gateway.url_in_cluster)
    pulumi.export("api_keys_secret_name", gateway.api_keys_secret_name)
    pulumi.export("api_keys_command", gateway.api_keys_command)
pulumi.export("estimated_cost_per_hour", cost.per_hour_json())
pulumi.export("cost_estimate", cost.as_json())
pulumi.export("nim_models", {
    m.served_model_name: {"url": m.url, "port_forward": m.port_forward, "kubernetes_name": spec.k8s_name}
    for m, spec in zip(models, cfg.models)
})
