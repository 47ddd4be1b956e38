"""NIM: the namespace with its NGC secrets (once), and one NimModel per configured model.

A NimModel is native Kubernetes objects (NVIDIA's nim-llm chart sits behind an NGC login, so its values cannot be
checked here; typed objects are validated against the Kubernetes schemas): a shared model-cache volume, the Job that
fills it on a CPU node (components/precache.py), a StatefulSet `nim-llm-<model>`, its Services, a ServiceMonitor, a
PodDisruptionBudget, and its scaling (a KEDA ScaledObject, and for a model reached through the HTTP add-on's
interceptor its routes: components/scaling.py). NIM's interface (env, ports, health and metrics endpoints, uid 1000)
is from NVIDIA's NIM for LLMs documentation and the NIM Operator's defaults (FACTS.md).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from planning.catalog import CatalogModel
from planning.models import ModelRequest
from planning.scheduling import GPU_TOLERATION, gpu_node_affinity
from planning.security import NIM_READ_ONLY_ROOT, NIM_SHM_GIB, by_digest, nim_memory_limit_gib, pod_security_labels, \
    restricted_container
from planning.workloads import NIM_UID
from components.precache import precache_job, precache_off_reason
from components.scaling import ModelScaling, ModelScalingArgs, Scaling
from components.waiters import VolumesReleased

PORT = 8000
PORT_NAME = "http-openai"
CACHE_PATH = "/model-store"
PULL_SECRET = "ngc-secret"
API_KEY_SECRET = "ngc-api"


def docker_config(api_key: str) -> str:
    """nvcr.io pull credentials: user `$oauthtoken`, password the NGC API key."""
    auth = base64.b64encode(f"$oauthtoken:{api_key}".encode()).decode()
    return json.dumps({"auths": {"nvcr.io": {"username": "$oauthtoken", "password": api_key, "auth": auth}}})


@dataclass
class NimNamespaceArgs:
    namespace: str
    ngc_api_key: pulumi.Output[str]  # a Pulumi secret


class NimNamespace(pulumi.ComponentResource):
    """The namespace every model runs in, with the nvcr.io pull secret and the NGC API key secret."""

    def __init__(self, name: str, args: NimNamespaceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:NimNamespace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.name = args.namespace
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": args.namespace, "labels": {
                "app.kubernetes.io/part-of": "nim-on-eks",
                # Every pod in it meets the restricted Pod Security Standard: NIM, its pre-cache Jobs, and AIPerf
                # (non-root: components/webui.py) (tests/test_pod_security.py).
                **pod_security_labels("restricted"),
            }},
            opts=child,
        )
        secret_opts = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        # Both are built from the Pulumi secret, so the key stays encrypted in state and hidden in every output.
        self.pull_secret = k8s.core.v1.Secret(
            f"{name}-pull-secret",
            metadata={"name": PULL_SECRET, "namespace": args.namespace},
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": pulumi.Output.secret(args.ngc_api_key.apply(docker_config))},
            opts=secret_opts,
        )
        self.api_key_secret = k8s.core.v1.Secret(
            f"{name}-api-key",
            metadata={"name": API_KEY_SECRET, "namespace": args.namespace},
            type="Opaque",
            string_data={"NGC_API_KEY": pulumi.Output.secret(args.ngc_api_key)},
            opts=secret_opts,
        )
        self.register_outputs({"namespace": args.namespace})


def startup_minutes(cache_gib: int) -> int:
    """A first start downloads the whole model: at least 30 minutes, more for big models (~5 GiB a minute)."""
    return max(30, math.ceil(cache_gib / 5))


def first_start_minutes(cache_gib: int) -> int:
    """How long a model's first start may take in all: a GPU node, the image, then NIM's own startup window.
    The StatefulSet's create timeout, and the grace the no-ready-replica alert gives a new model."""
    return startup_minutes(cache_gib) + 20


def model_url(k8s_name: str, namespace: str) -> str:
    return f"http://{k8s_name}.{namespace}.svc.cluster.local:{PORT}/v1"


@dataclass
class NimModelArgs:
    """What a model runs with, and what every object of the model waits for: on `up` GPU capacity, the cache and the
    metrics pipeline exist first; on `destroy` the model goes first, so its pods drain before the NodePool takes their
    nodes away, and its cache volume's release is waited for before the EFS driver and file system are deleted."""

    model: ModelRequest
    entry: CatalogModel
    namespace: NimNamespace  # the namespace and its NGC secrets (image pull, API key)
    storage_class: k8s.storage.v1.StorageClass  # EFS: the model cache's claim takes its name from it
    scaling: Scaling  # KEDA (and the HTTP add-on): the model's ScaledObject and routes need them first
    service_monitor_labels: dict[str, str] | None  # None: no ServiceMonitor (no Prometheus Operator)
    volumes_released: VolumesReleased  # destroy: the cache's EFS access point is released before the driver goes
    gpu_node_pool: k8s.apiextensions.CustomResource  # Karpenter's GPU NodePool
    cpu_node_pool: k8s.apiextensions.CustomResource  # Karpenter's CPU NodePool: where the pre-cache Job runs
    device_plugin: k8s.helm.v3.Release  # without it GPU nodes advertise no nvidia.com/gpu
    # What ServiceMonitors and scaling triggers need first (Monitoring.ready: the Prometheus stack); none without it.
    metrics_pipeline: list[pulumi.Resource] = field(default_factory=list)
    # The Prometheus KEDA's triggers query (Monitoring.prometheus_address); None: monitoring is off, and the model
    # scales on requests through the interceptor.
    prometheus_address: str | None = None
    image_digests: dict[str, str] = field(default_factory=dict)  # config image_digests: pull by digest when given


class NimModel(pulumi.ComponentResource):
    """One NIM server for one model: cache volume, pre-cache Job, StatefulSet, Services, ServiceMonitor, PDB, its
    scaling."""

    url: str
    served_model_name: str
    port_forward: str

    def __init__(self, name: str, args: NimModelArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:NimModel", name, None, opts)
        m, entry, ns = args.model, args.entry, args.namespace.name
        app = m.k8s_name
        labels = {"app.kubernetes.io/name": "nim-llm", "app.kubernetes.io/instance": app,
                  "app.kubernetes.io/part-of": "nim-on-eks"}
        waits_for = [args.namespace, args.storage_class, args.volumes_released, args.gpu_node_pool, args.device_plugin,
                     *args.metrics_pipeline]
        child = pulumi.ResourceOptions(parent=self, depends_on=waits_for)

        # One ReadWriteMany cache per model, shared by all its replicas.
        self.cache = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-cache",
            metadata={"name": f"{app}-cache", "namespace": ns, "labels": labels},
            spec={
                "accessModes": ["ReadWriteMany"],
                "storageClassName": args.storage_class.metadata.name,
                "resources": {"requests": {"storage": f"{entry.cache_gib}Gi"}},
            },
            # Bound asynchronously by the EFS provisioner; the StatefulSet waits for it anyway.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                custom_timeouts=pulumi.CustomTimeouts(create="10m"))),
        )

        # Never pay a GPU to download: a Job on a CPU node fills the cache, and the StatefulSet waits for it. It needs
        # what every consumer of the cache needs (the namespace and its secrets, the claim, the volumes-released
        # waiter), and the CPU pool.
        self.precache = None
        if reason := precache_off_reason(m, entry):
            pulumi.log.warn(f"{m.name} is not pre-cached ({reason}): its first replica downloads the weights on its "
                            "GPU node, which is paid meanwhile", resource=self)
        else:
            self.precache = precache_job(
                f"{name}-precache", m, entry, namespace=ns, claim=f"{app}-cache", cache_path=CACHE_PATH,
                pull_secret=PULL_SECRET, api_key_secret=API_KEY_SECRET, image_digests=args.image_digests,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[
                    args.namespace, args.storage_class, args.volumes_released, args.cpu_node_pool, self.cache]),
            )

        env = [
            {"name": "NGC_API_KEY", "valueFrom": {"secretKeyRef": {"name": API_KEY_SECRET, "key": "NGC_API_KEY"}}},
            {"name": "NIM_CACHE_PATH", "value": CACHE_PATH},
            {"name": "NIM_SERVER_PORT", "value": str(PORT)},
            {"name": "NIM_SERVED_MODEL_NAME", "value": entry.served_model_name},
            {"name": "NIM_JSONL_LOGGING", "value": "1"},
            {"name": "NIM_LOG_LEVEL", "value": "INFO"},
        ]
        env_names = {e["name"] for e in env}
        env += [{"name": k, "value": v} for k, v in m.env if k not in env_names]

        def probe(path: str, period: int, failures: int, delay: int = 0) -> dict[str, Any]:
            return {"httpGet": {"path": path, "port": PORT_NAME}, "periodSeconds": period,
                    "failureThreshold": failures, "timeoutSeconds": 5, **({"initialDelaySeconds": delay} if delay else {})}

        startup_checks = startup_minutes(entry.cache_gib) * 6  # every 10 s
        resources = {
            "requests": {"cpu": str(entry.cpu), "memory": f"{entry.memory_gib}Gi", "nvidia.com/gpu": str(m.gpus)},
            # host memory: a leak stops before it takes the node's other replicas (planning/security.py)
            "limits": {"memory": f"{nim_memory_limit_gib(entry.memory_gib)}Gi", "nvidia.com/gpu": str(m.gpus)},
        }
        pod_spec = {
            "serviceAccountName": "default",
            "automountServiceAccountToken": False,  # NIM never talks to the Kubernetes API
            "imagePullSecrets": [{"name": PULL_SECRET}],
            "securityContext": {"runAsUser": NIM_UID, "runAsGroup": NIM_UID, "fsGroup": NIM_UID,
                                "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "tolerations": [GPU_TOLERATION],
            "affinity": gpu_node_affinity(m.gpu_types, m.gpus, m.capacity_types),
            # In-flight requests finish: the pod leaves the Service endpoints first (preStop), then NIM gets
            # SIGTERM with time to drain long generations.
            "terminationGracePeriodSeconds": 180,
            "containers": [{
                "name": "nim-llm",
                "image": by_digest(f"{entry.image}:{m.image_tag}", args.image_digests),
                "imagePullPolicy": "IfNotPresent",
                "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
                "env": env,
                "resources": resources,
                "volumeMounts": [{"name": "model-store", "mountPath": CACHE_PATH},
                                 {"name": "dshm", "mountPath": "/dev/shm"}],
                # Not a read-only root: no NVIDIA source lists what NIM writes besides the cache and /dev/shm (its
                # engines' compile caches, /tmp), and a missed path fails the model on a paid GPU (planning/
                # security.py NIM_READ_ONLY_ROOT: what was checked). Non-root, it cannot change the image's files.
                "securityContext": restricted_container(read_only_root=NIM_READ_ONLY_ROOT),
                "startupProbe": probe("/v1/health/live", 10, startup_checks, delay=40),
                "livenessProbe": probe("/v1/health/live", 15, 4),
                "readinessProbe": probe("/v1/health/ready", 10, 3),
                "lifecycle": {"preStop": {"sleep": {"seconds": 15}}},
            }],
            "volumes": [
                {"name": "model-store", "persistentVolumeClaim": {"claimName": f"{app}-cache"}},
                # NCCL and the inference engine share tensors through /dev/shm: memory-backed, not the 64 MiB default.
                {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{NIM_SHM_GIB}Gi"}},
            ],
        }

        headless = f"{app}-sts"
        self.statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-sts",
            metadata={"name": app, "namespace": ns, "labels": labels},
            spec={
                "serviceName": headless,
                # KEDA sets replicas (min_replicas, which may be 0, to max_replicas). Created with the default one, so
                # the first `pulumi up` proves the model serves (and fills its cache); with min_replicas 0 it goes to
                # zero once idle.
                # OrderedReady: replica N+1 starts only once N is Ready, so exactly one pod downloads into an empty
                # cache and every later one reads it (no two writers racing on the same files).
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate"},
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                depends_on=[*waits_for, self.cache, *([self.precache] if self.precache else [])],
                # a first start waits for a GPU node and loads the model; it downloads it too when it is not
                # pre-cached, so the window stays sized for a download
                custom_timeouts=pulumi.CustomTimeouts(create=f"{first_start_minutes(entry.cache_gib)}m",
                                                      update=f"{first_start_minutes(entry.cache_gib)}m"),
            )),
        )

        api_labels = {**labels, "nim-on-eks/endpoint": "api"}
        self.service = k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": app, "namespace": ns, "labels": api_labels},
            spec={"type": "ClusterIP", "selector": labels,
                  "ports": [{"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME, "protocol": "TCP"}]},
            opts=child,
        )
        self.headless_service = k8s.core.v1.Service(
            f"{name}-headless",
            metadata={"name": headless, "namespace": ns, "labels": labels},
            spec={"clusterIP": "None", "selector": labels, "publishNotReadyAddresses": True,
                  "ports": [{"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME, "protocol": "TCP"}]},
            opts=child,
        )

        # Evict at most one replica at a time; never block a drain for good (a single replica may go, and a
        # replica that is not Ready may always be evicted).
        self.pdb = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": app, "namespace": ns, "labels": labels},
            spec={"maxUnavailable": 1, "selector": {"matchLabels": labels},
                  "unhealthyPodEvictionPolicy": "AlwaysAllow"},
            opts=child,
        )

        self.service_monitor = None
        if args.service_monitor_labels is not None:
            self.service_monitor = k8s.apiextensions.CustomResource(
                f"{name}-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata={"name": app, "namespace": ns, "labels": {**labels, **args.service_monitor_labels}},
                spec={
                    "selector": {"matchLabels": api_labels},
                    "namespaceSelector": {"matchNames": [ns]},
                    "endpoints": [{"port": PORT_NAME, "path": entry.metrics_path, "interval": "30s"}],
                },
                opts=child,
            )

        # KEDA's ScaledObject; for a model at zero (or any, without monitoring) the interceptor's routes, and the URL
        # every consumer uses goes through it.
        self.scaling = ModelScaling(
            f"{name}-scaling",
            ModelScalingArgs(model=m, entry=entry, namespace=ns, labels=labels,
                             monitoring=args.prometheus_address is not None, statefulset=self.statefulset,
                             service=self.service, scaling=args.scaling, prometheus_address=args.prometheus_address,
                             metrics_pipeline=args.metrics_pipeline),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = model_url(self.scaling.host, ns)
        # where the gateway sends the model's requests: the same host and port as `url`
        self.host, self.port = f"{self.scaling.host}.{ns}.svc.cluster.local", PORT
        self.served_model_name = entry.served_model_name
        self.port_forward = f"kubectl -n {ns} port-forward svc/{app} {PORT}:{PORT}"
        self.register_outputs({"url": self.url, "served_model_name": self.served_model_name,
                               "port_forward": self.port_forward})
