"""Monitoring: kube-prometheus-stack (whose Prometheus KEDA's triggers query for NIM's load), the NIM Grafana
dashboard, GPU metrics from the DCGM exporter, and alert rules.

Chart values follow each chart's own values.yaml at the pinned version (kube-prometheus-stack 88.5.3 with its
Grafana 12.11.1 sub-chart: ../shared/reference; dcgm-exporter 4.8.2: NVIDIA/dcgm-exporter @ 691c9276,
deployment/values.yaml).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from parts import helm
from parts.secrets import kept_secret
from planning import versions
from planning.security import pod_security_labels
from components.alerts import Alerts, AlertsArgs, alertmanager_config
from components.waiters import VolumesReleased
from planning.config import AlertSettings, PrometheusSettings
from planning.models import WORKLOAD_PREFIX
from planning.scheduling import CPU_POOL_AFFINITY, GPU_NODE_SELECTOR, GPU_TOLERATION
from planning.workloads import CONFIG_RELOADER, CPU_POOL, GRAFANA_SIDECAR

NAMESPACE = "monitoring"
RELEASE = "kube-prometheus-stack"
DASHBOARD = Path(__file__).resolve().parent.parent / "dashboards" / "nim.json"
GRAFANA_SECRET = "grafana-admin"
# Labels ServiceMonitors and rules carry. Prometheus selects every monitor and rule anyway (the *NilUsesHelmValues
# settings below); the release label keeps them visible to a stack that was configured the chart's default way.
MONITOR_LABELS = {"release": RELEASE}


def fullname(release: str = RELEASE) -> str:
    """The chart's `kube-prometheus-stack.fullname`: the release name when it contains the chart name, else
    `<release>-kube-prometheus-stack`, truncated at 26 characters (templates/_helpers.tpl)."""
    name = release if "kube-prometheus-stack" in release else f"{release}-kube-prometheus-stack"
    return name[:26].rstrip("-")


# Alertmanager's service account, set explicitly in the values (alertmanager.serviceAccount.name) so the EKS Pod
# Identity association can never drift from it. It is the name the chart would give it anyway:
# `kube-prometheus-stack.alertmanager.serviceAccountName` is `<fullname>-alertmanager` when serviceAccount.create
# (the default) and no name is set (templates/_helpers.tpl, templates/alertmanager/serviceaccount.yaml).
ALERTMANAGER_SERVICE_ACCOUNT = f"{fullname()}-alertmanager"
# Its Service (templates/alertmanager/service.yaml: `<fullname>-alertmanager`, port 9093).
ALERTMANAGER_SERVICE = f"{fullname()}-alertmanager"


def prometheus_url(release: str = RELEASE, namespace: str = NAMESPACE) -> str:
    """kube-prometheus-stack names its Prometheus Service `<fullname>-prometheus` (templates/prometheus/service.yaml;
    tests/test_scaling.py finds it, port 9090 `http-web`, in the chart's render)."""
    return f"http://{fullname(release)}-prometheus.{namespace}.svc"


PROMETHEUS_PORT = 9090  # prometheus.service.port, the chart's default


def alert_rules(namespace: str, ttft_p90_seconds: float, first_start_minutes: int = 0,
                cold_start_minutes: int = 0) -> list[dict[str, Any]]:
    """`first_start_minutes`: how long a model's first start may take (GPU node, image, download); a StatefulSet that
    young has no Ready replica by design, so the no-ready-replica alert waits for it, and only for it.
    `cold_start_minutes`: how long a model woken from zero may take to be Ready (planning/scaling.py); a model whose
    replica count changed that recently is starting, not failing. A model at zero has no replica to be Ready."""
    sel = f'namespace="{namespace}"'
    models = f'{sel}, statefulset=~"{WORKLOAD_PREFIX}.*"'
    hpas = f'{sel}, horizontalpodautoscaler=~"{WORKLOAD_PREFIX}.*"'
    waking = (f" unless on (namespace, statefulset) (changes(kube_statefulset_replicas{{{models}}}"
              f"[{cold_start_minutes}m]) > 0)" if cold_start_minutes else "")
    return [{
        "name": "nim-on-eks.nim",
        "rules": [
            {"alert": "NimModelNoReadyReplica",
             "expr": f"(kube_statefulset_status_replicas_ready{{{models}}} == 0) and on (namespace, statefulset) "
                     f"(kube_statefulset_replicas{{{models}}} > 0) unless on (namespace, statefulset) "
                     f"((time() - kube_statefulset_created{{{models}}}) < {first_start_minutes * 60}){waking}",
             "for": "10m", "labels": {"severity": "critical"},
             "annotations": {"summary": "NIM model {{ $labels.statefulset }} has no ready replica",
                             "description": "No replica of {{ $labels.statefulset }} has been Ready for 10 minutes: "
                                            "the model is not serving."}},
            {"alert": "NimTimeToFirstTokenHigh",
             "expr": "histogram_quantile(0.9, sum by (le, service) (rate(time_to_first_token_seconds_bucket"
                     f"{{{sel}}}[5m]))) > {ttft_p90_seconds:g}",
             "for": "10m", "labels": {"severity": "warning"},
             "annotations": {"summary": "NIM {{ $labels.service }}: p90 time to first token above "
                                        f"{ttft_p90_seconds:g}s",
                             "description": "p90 TTFT is {{ $value | humanizeDuration }} for 10 minutes."}},
            {"alert": "NimRequestsWaiting",
             "expr": f"sum by (service) (num_requests_waiting{{{sel}}}) > 0",
             "for": "5m", "labels": {"severity": "warning"},
             "annotations": {"summary": "NIM {{ $labels.service }}: requests queued for 5 minutes",
                             "description": "{{ $value }} requests are waiting: the model is at capacity."}},
            {"alert": "NimKVCacheNearlyFull",
             "expr": f"max by (service) (gpu_cache_usage_perc{{{sel}}}) > 0.9",
             "for": "5m", "labels": {"severity": "warning"},
             "annotations": {"summary": "NIM {{ $labels.service }}: KV cache above 90%",
                             "description": "KV cache use is {{ $value | humanizePercentage }}."}},
            # KEDA's HPA of each model is named like it (components/scaling.py: horizontalPodAutoscalerConfig.name)
            {"alert": "NimAutoscalerAtMaxReplicas",
             "expr": f'kube_horizontalpodautoscaler_status_current_replicas{{{hpas}}} >= '
                     f'kube_horizontalpodautoscaler_spec_max_replicas{{{hpas}}}',
             "for": "15m", "labels": {"severity": "warning"},
             "annotations": {"summary": "HPA {{ $labels.horizontalpodautoscaler }} at max_replicas for 15 minutes",
                             "description": "Demand exceeds what max_replicas allows: raise it (and gpu_limit) or "
                                            "expect queueing."}},
        ],
    }]


def load_dashboard(path: Path = DASHBOARD) -> str:
    return json.dumps(json.loads(path.read_text()), indent=1)


@dataclass
class MonitoringArgs:
    cluster_name: str
    region: str
    nim_namespace: str
    # gp3, for Prometheus' data: the release takes the class's name from it, and so waits for it.
    storage_class: k8s.storage.v1.StorageClass
    # Prometheus' volume is an EBS volume: on destroy the release goes first, then the waiter waits for the volume.
    volumes_released: VolumesReleased
    prometheus: PrometheusSettings  # retention, volume size
    # The alert rules' threshold, and where alerts go: with an address, Alertmanager routes alerts to an SNS topic
    # that emails it (components/alerts.py); without, Alertmanager has no receiver.
    alerts: AlertSettings
    # The longest first start of the configured models (NIM's startup window plus a GPU node and the image).
    model_first_start_minutes: int
    # Karpenter's NodePools its pods run on: the CPU pool (everything but the GPU exporter) and the GPU pool (the
    # DCGM exporter). Created after them, and on destroy deleted before them, so Karpenter never drains its pods.
    cpu_node_pool: k8s.apiextensions.CustomResource
    gpu_node_pool: k8s.apiextensions.CustomResource
    # The longest a model at zero may take to wake (planning/scaling.cold_start_limit_seconds); 0: none scales to zero.
    model_cold_start_minutes: int = 0
    # the cluster's name as an Output of the cluster (the alerts' Pod Identity association waits for it)
    eks_cluster_name: pulumi.Input[str] | None = None
    # config image_digests: kube-prometheus-stack's images (its own and its sub-charts') pulled by digest
    image_digests: dict[str, str] = field(default_factory=dict)


class Monitoring(pulumi.ComponentResource):
    """Everything that makes the models observable, and the Prometheus their scaling triggers query."""

    ready: list[pulumi.Resource]  # what ServiceMonitors and scaling triggers need first
    monitor_labels: dict[str, str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)  # providers (AWS, the cluster's Kubernetes) come from opts

        # Privileged: node-exporter (kube-prometheus-stack) runs with hostNetwork, hostPID and hostPath mounts, and
        # dcgm-exporter mounts the kubelet's pod-resources socket from the host (hostPath) with the SYS_ADMIN
        # capability its profiling metrics need; hostPath is not allowed even at baseline (Pod Security Standards).
        # Warnings and audit still flag every pod below restricted.
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns", metadata={"name": NAMESPACE, "labels": pod_security_labels("privileged")}, opts=child)
        self.namespace = namespace  # the NetworkPolicies go into it (components/netpol.py)
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[namespace])

        # --- Grafana admin password: random, kept in Secrets Manager, handed to Grafana as a Kubernetes secret
        password = random.RandomPassword(f"{name}-grafana", length=24, special=False, opts=child)
        secret_value = pulumi.Output.secret(password.result)
        self.grafana_secret = kept_secret(f"{name}-grafana", name_prefix=f"{args.cluster_name}-grafana-",
                                          description=f"Grafana admin password of {args.cluster_name}",
                                          value=secret_value, parent=self)
        grafana_admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_SECRET, "namespace": NAMESPACE},
            type="Opaque",
            string_data={"admin-user": "admin", "admin-password": secret_value},
            opts=in_namespace,
        )

        # --- alert delivery: SNS topic and Alertmanager's identity, before Alertmanager starts
        self.alerts = None
        if args.alerts.email:
            if args.eks_cluster_name is None:
                raise ValueError("MonitoringArgs.eks_cluster_name is required with alert_email")
            self.alerts = Alerts(
                f"{name}-alerts",
                AlertsArgs(cluster_name=args.cluster_name, eks_cluster_name=args.eks_cluster_name,
                           email=args.alerts.email, namespace=NAMESPACE,
                           service_account=ALERTMANAGER_SERVICE_ACCOUNT),
                opts=child,
            )
            alertmanager_values: dict[str, Any] = {"config": alertmanager_config(
                self.alerts.topic_arn, args.region, args.cluster_name, NAMESPACE, ALERTMANAGER_SERVICE)}
            # EKS Pod Identity gives credentials to pods created after the association exists; a new config alone is
            # hot-reloaded into the running pod, which would keep publishing without them. Naming the association in
            # the pod's annotations rolls Alertmanager whenever the association is created or replaced.
            pod_metadata = {"annotations": {"nim-on-eks/pod-identity-association": self.alerts.association.association_id}}
        else:
            alertmanager_values = {}
            pod_metadata = {}

        # --- kube-prometheus-stack
        retention_size_gb = int(args.prometheus.volume_gb * 0.85)  # stop before the volume fills
        self.stack = helm.release(
            f"{name}-kube-prometheus-stack", versions.KUBE_PROMETHEUS_STACK, name=RELEASE, namespace=NAMESPACE,
            values={
                "prometheus": {"prometheusSpec": {
                    # every ServiceMonitor, PodMonitor, Probe and rule in the cluster, not only this release's
                    "serviceMonitorSelectorNilUsesHelmValues": False,
                    "podMonitorSelectorNilUsesHelmValues": False,
                    "ruleSelectorNilUsesHelmValues": False,
                    "probeSelectorNilUsesHelmValues": False,
                    "scrapeConfigSelectorNilUsesHelmValues": False,
                    "scrapeInterval": "30s",
                    "evaluationInterval": "30s",
                    "retention": args.prometheus.retention,
                    "retentionSize": f"{retention_size_gb}GB",
                    "storageSpec": {"volumeClaimTemplate": {"spec": {
                        "storageClassName": args.storage_class.metadata.name,  # encrypted gp3
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": f"{args.prometheus.volume_gb}Gi"}},
                    }}},
                    "resources": {"requests": CPU_POOL["prometheus"].main.as_k8s(), "limits": {"memory": "4Gi"}},
                    "affinity": CPU_POOL_AFFINITY,
                    # its volume goes with it: `pulumi destroy` leaves no EBS volume behind
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
                }},
                "alertmanager": {
                    "enabled": True,
                    "serviceAccount": {"create": True, "name": ALERTMANAGER_SERVICE_ACCOUNT},
                    "alertmanagerSpec": {
                        **({"podMetadata": pod_metadata} if pod_metadata else {}),
                        "affinity": CPU_POOL_AFFINITY,
                        "resources": {"requests": CPU_POOL["alertmanager"].main.as_k8s(),
                                      "limits": {"memory": "256Mi"}},
                    },
                    **alertmanager_values,
                },
                "grafana": {
                    "enabled": True,
                    "admin": {"existingSecret": GRAFANA_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
                    # each of its sidecars (dashboards, datasources) takes these requests
                    # Its sidecars read dashboards and the data source from ConfigMaps in this namespace only (all
                    # this program and the chart create live here), never Secrets; with a namespaced Role instead of
                    # the chart's default ClusterRole, which lets it read every Secret of the cluster (grafana chart
                    # 12.11.1 templates/clusterrole.yaml: configmaps and secrets, get/watch/list).
                    "rbac": {"namespaced": True},
                    "sidecar": {"dashboards": {"enabled": True, "label": "grafana_dashboard", "labelValue": "1",
                                               "searchNamespace": NAMESPACE, "resource": "configmap"},
                                "datasources": {"searchNamespace": NAMESPACE, "resource": "configmap"},
                                "resources": {"requests": GRAFANA_SIDECAR.as_k8s()}},
                    "affinity": CPU_POOL_AFFINITY,
                    "resources": {"requests": CPU_POOL["grafana"].main.as_k8s(), "limits": {"memory": "512Mi"}},
                },
                "prometheusOperator": {
                    "affinity": CPU_POOL_AFFINITY,
                    "resources": {"requests": CPU_POOL["prometheus-operator"].main.as_k8s(),
                                  "limits": {"memory": "256Mi"}},
                    # the config-reloader sidecar it adds to the Prometheus and Alertmanager pods
                    "prometheusConfigReloader": {"resources": {"requests": CONFIG_RELOADER.as_k8s()}},
                    # the install's certificate Jobs
                    "admissionWebhooks": {"patch": {"affinity": CPU_POOL_AFFINITY}},
                },
                "kube-state-metrics": {
                    "affinity": CPU_POOL_AFFINITY,
                    "resources": {"requests": CPU_POOL["kube-state-metrics"].main.as_k8s(),
                                  "limits": {"memory": "256Mi"}},
                },
                # The EKS control plane and kube-proxy's metrics are not reachable: do not scrape (and alert on) them.
                "kubeControllerManager": {"enabled": False},
                "kubeScheduler": {"enabled": False},
                "kubeEtcd": {"enabled": False},
                "kubeProxy": {"enabled": False},
            },
            parent=self,
            depends_on=[namespace, grafana_admin, args.volumes_released, args.cpu_node_pool,
                        *(self.alerts.ready if self.alerts else [])],
            timeout=900,  # Prometheus waits for its volume
            image_digests=args.image_digests,
        )
        after_stack = pulumi.ResourceOptions(parent=self, depends_on=[self.stack])

        # --- GPU metrics on GPU nodes only
        self.dcgm = helm.release(
            f"{name}-dcgm-exporter", versions.DCGM_EXPORTER, name="dcgm-exporter", namespace=NAMESPACE,
            values={
                "nodeSelector": GPU_NODE_SELECTOR,
                "tolerations": [GPU_TOLERATION],
                "serviceMonitor": {"enabled": True, "interval": "30s", "additionalLabels": MONITOR_LABELS},
            },
            parent=self, depends_on=[self.stack, args.gpu_node_pool],
        )

        # --- the NIM dashboard, picked up by Grafana's sidecar
        k8s.core.v1.ConfigMap(
            f"{name}-nim-dashboard",
            metadata={"name": "nim-dashboard", "namespace": NAMESPACE, "labels": {"grafana_dashboard": "1"}},
            data={"nim.json": load_dashboard()},
            opts=in_namespace,
        )

        # --- alerts
        k8s.apiextensions.CustomResource(
            f"{name}-nim-alerts",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": "nim-alerts", "namespace": NAMESPACE, "labels": MONITOR_LABELS},
            spec={"groups": alert_rules(args.nim_namespace, args.alerts.ttft_p90_seconds,
                                        args.model_first_start_minutes, args.model_cold_start_minutes)},
            opts=after_stack,
        )

        self.ready = [self.stack]
        self.prometheus_address = f"{prometheus_url()}:{PROMETHEUS_PORT}"
        self.monitor_labels = MONITOR_LABELS
        self.grafana_secret_name = self.grafana_secret.name
        self.grafana_password_command = self.grafana_secret.name.apply(
            lambda n: f"aws secretsmanager get-secret-value --region {args.region} --secret-id {n} "
                      "--query SecretString --output text")
        self.grafana_port_forward = f"kubectl -n {NAMESPACE} port-forward svc/{RELEASE}-grafana 3000:80"
        self.register_outputs({"grafana_secret_name": self.grafana_secret_name})
