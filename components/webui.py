"""Try and measure the models: Open WebUI (a chat front end for every deployed model) and a GenAI-Perf pod."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from planning import versions
from planning.security import GENAI_PERF_UID, by_digest, OPEN_WEBUI_UID, pod_security_labels, restricted_container, restricted_pod
from planning.scheduling import AMD64_NODE_SELECTOR, CPU_POOL_AFFINITY
from planning.workloads import CPU_POOL, OPEN_WEBUI_DATA_GB
from components.nim import PULL_SECRET, NimNamespace
from components.waiters import VolumesReleased

NAMESPACE = "open-webui"
# Where Open WebUI's backend keeps the static files it serves, and copies the frontend's icons into on every start
# (backend/open_webui/config.py: STATIC_DIR, default OPEN_WEBUI_DIR/static; the image's WORKDIR is /app/backend). In the
# image it belongs to root: as a non-root user on a read-only root the copy's `mkdir` of a missing folder would fail,
# so it is an emptyDir that an init container fills from the image first.
STATIC_DIR = "/app/backend/open_webui/static"
DATA_DIR = "/app/backend/data"


def openai_env(urls: list[str]) -> dict[str, str]:
    """Open WebUI's OpenAI connections: semicolon-separated URLs with position-matched keys (NIM needs none)."""
    return {"OPENAI_API_BASE_URLS": ";".join(urls), "OPENAI_API_KEYS": ";".join("not-needed" for _ in urls)}


def openai_env_vars(urls: list[str], keyed: bool) -> list[dict[str, object]]:
    """The connections as container env: through the gateway (`keyed`: one URL, its API key from the Secret), or
    straight to each model."""
    if not keyed:
        return [{"name": k, "value": v} for k, v in openai_env(urls).items()]
    return [{"name": "OPENAI_API_BASE_URLS", "value": ";".join(urls)},
            {"name": "OPENAI_API_KEYS", "valueFrom": {"secretKeyRef": {"name": "open-webui", "key": "OPENAI_API_KEY"}}}]


@dataclass
class OpenWebUIArgs:
    model_urls: list[str]  # in-cluster /v1 URLs, in config order (the gateway's alone when it runs)
    # What every object of Open WebUI waits for, and on destroy goes before: gp3 (its data volume's claim takes the
    # class's name), the volume waiter (its EBS volume is released first), the CPU NodePool it runs on.
    storage_class: k8s.storage.v1.StorageClass
    volumes_released: VolumesReleased
    cpu_node_pool: k8s.apiextensions.CustomResource
    image_digests: dict[str, str] = field(default_factory=dict)  # config image_digests: pull by digest when given
    # The gateway's key for Open WebUI (a secret); None: no gateway, the models are called directly.
    api_key: pulumi.Output[str] | None = None


class OpenWebUI(pulumi.ComponentResource):
    def __init__(self, name: str, args: OpenWebUIArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:OpenWebUI", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {"app.kubernetes.io/name": "open-webui", "app.kubernetes.io/part-of": "nim-on-eks"}
        # every pod in it meets the restricted Pod Security Standard (tests/test_pod_security.py)
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns", metadata={"name": NAMESPACE, "labels": pod_security_labels("restricted")}, opts=child)
        self.namespace = namespace  # the NetworkPolicies go into it (components/netpol.py)
        waits_for = [args.storage_class, args.volumes_released, args.cpu_node_pool]
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[namespace, *waits_for])

        # Signs Open WebUI's sessions; stable across restarts so users stay logged in.
        key = random.RandomPassword(f"{name}-secret-key", length=48, special=False, opts=child)
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": "open-webui", "namespace": NAMESPACE, "labels": labels},
            type="Opaque",
            string_data={"WEBUI_SECRET_KEY": pulumi.Output.secret(key.result),
                         **({"OPENAI_API_KEY": args.api_key} if args.api_key is not None else {})},
            opts=in_ns,
        )
        # Accounts, chats and settings survive restarts.
        data = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-data",
            # gp3 binds only once the pod is scheduled (WaitForFirstConsumer), and the pod waits for this claim:
            # Pulumi must not wait for it to be Bound.
            metadata={"name": "open-webui-data", "namespace": NAMESPACE, "labels": labels,
                      "annotations": {"pulumi.com/skipAwait": "true"}},
            spec={"accessModes": ["ReadWriteOnce"], "storageClassName": args.storage_class.metadata.name,
                  "resources": {"requests": {"storage": f"{OPEN_WEBUI_DATA_GB}Gi"}}},
            opts=in_ns,
        )
        image = by_digest(versions.OPEN_WEBUI_IMAGE, args.image_digests)
        env = openai_env_vars(args.model_urls, keyed=args.api_key is not None)
        env += [
            {"name": "WEBUI_SECRET_KEY", "valueFrom": {"secretKeyRef": {"name": "open-webui", "key": "WEBUI_SECRET_KEY"}}},
            {"name": "ENABLE_OLLAMA_API", "value": "false"},  # no Ollama here: do not probe localhost:11434
            # The model connections above are PersistentConfig: by default read from the environment on the first
            # start only, then the copy in the database (on the volume) wins, so a changed nim_models would never show.
            # With persistence off the stack's values win on every start (open-webui v0.6.43 backend/open_webui/
            # config.py: persistence is on only for the value "true"); changes made in the admin panel last until
            # the next restart.
            {"name": "ENABLE_PERSISTENT_CONFIG", "value": "false"},
            # not the image's /root (root's, and read-only here): what libraries keep under ~ goes to /tmp
            {"name": "HOME", "value": "/tmp"},
        ]
        # Copies the image's static files into the writable emptyDir the server then uses (STATIC_DIR above).
        static_init = {
            "name": "static-files",
            "image": image,
            "command": ["sh", "-c", f"cp -R {STATIC_DIR}/. /static/"],
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            "volumeMounts": [{"name": "static", "mountPath": "/static"}],
            "securityContext": restricted_container(read_only_root=True),
        }
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={"name": "open-webui", "namespace": NAMESPACE, "labels": labels},
            spec={
                "replicas": 1,
                "strategy": {"type": "Recreate"},  # one ReadWriteOnce volume
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {
                    "affinity": CPU_POOL_AFFINITY,
                    "automountServiceAccountToken": False,  # it never calls the Kubernetes API
                    # non-root; fsGroup makes the data volume (EBS, formatted by root) the group's, so it can write
                    "securityContext": restricted_pod(OPEN_WEBUI_UID),
                    "initContainers": [static_init],
                    "containers": [{
                        "name": "open-webui",
                        "image": image,
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "env": env,
                        "resources": {"requests": CPU_POOL["open-webui"].main.as_k8s(),
                                      "limits": {"cpu": "2", "memory": "3Gi"}},
                        # Writable: its data (database, uploads, model caches: DATA_DIR), the static files, /tmp (HOME,
                        # uploads in flight). start.sh's `tee server.log` into /app/backend cannot open its file on
                        # the read-only root; tee still passes the log to stdout (GNU tee goes on after a file error).
                        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR},
                                         {"name": "static", "mountPath": STATIC_DIR},
                                         {"name": "tmp", "mountPath": "/tmp"}],
                        # the first start downloads its embedding model
                        "startupProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10,
                                         "failureThreshold": 60},
                        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
                        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 30,
                                          "failureThreshold": 4},
                        "securityContext": restricted_container(read_only_root=True),
                    }],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "open-webui-data"}},
                                {"name": "static", "emptyDir": {"sizeLimit": "256Mi"}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}],
                }},
            },
            opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[
                namespace, secret, data, *waits_for])),
        )
        k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": "open-webui", "namespace": NAMESPACE, "labels": labels},
            spec={"type": "ClusterIP", "selector": labels,
                  "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]},
            opts=in_ns,
        )
        self.port_forward = f"kubectl -n {NAMESPACE} port-forward svc/open-webui 8080:80"
        self.register_outputs({"port_forward": self.port_forward})


@dataclass
class GenAiPerfArgs:
    # The NIM namespace, so `--url nim-llm-<model>:8000` resolves; the pod pulls with its NGC secret, so waits for it.
    namespace: NimNamespace
    cpu_node_pool: k8s.apiextensions.CustomResource  # Karpenter's CPU NodePool, which it runs on
    image_digests: dict[str, str] = field(default_factory=dict)  # config image_digests: pull by digest when given


class GenAiPerf(pulumi.ComponentResource):
    """A pod that stays up with NVIDIA's GenAI-Perf, for `kubectl exec ... genai-perf profile` runs."""

    def __init__(self, name: str, args: GenAiPerfArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:GenAiPerf", name, None, opts)
        labels = {"app.kubernetes.io/name": "genai-perf", "app.kubernetes.io/part-of": "nim-on-eks"}
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={"name": "genai-perf", "namespace": args.namespace.name, "labels": labels},
            spec={
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {
                    "affinity": CPU_POOL_AFFINITY,  # it measures an HTTP endpoint: no GPU needed
                    # the Triton SDK image is amd64 only, as far as checked (planning/versions.py GENAI_PERF_ARCHES)
                    "nodeSelector": AMD64_NODE_SELECTOR,
                    "imagePullSecrets": [{"name": PULL_SECRET}],
                    "automountServiceAccountToken": False,  # it measures NIM over HTTP, never calls the API
                    # The Triton SDK image runs as root by default; nothing in it needs root: `sleep`, and the
                    # genai-perf CLI, which writes its artifacts under the working directory and downloads the
                    # tokenizer to the Hugging Face cache under HOME. Both are the emptyDir `work`, /tmp another.
                    "securityContext": restricted_pod(GENAI_PERF_UID, fs_group=False),
                    "containers": [{
                        "name": "genai-perf",
                        "image": by_digest(versions.GENAI_PERF_IMAGE, args.image_digests),
                        "command": ["sleep", "infinity"],
                        "workingDir": "/work",
                        "env": [{"name": "HOME", "value": "/work"}],
                        "resources": {"requests": CPU_POOL["genai-perf"].main.as_k8s(),
                                      "limits": {"cpu": "4", "memory": "8Gi"}},
                        "volumeMounts": [{"name": "work", "mountPath": "/work"}, {"name": "tmp", "mountPath": "/tmp"}],
                        "securityContext": restricted_container(read_only_root=True),
                    }],
                    "volumes": [{"name": "work", "emptyDir": {"sizeLimit": "10Gi"}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}],
                    "terminationGracePeriodSeconds": 5,
                }},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.namespace, args.cpu_node_pool]),
        )
        self.exec = f"kubectl -n {args.namespace.name} exec -it deploy/genai-perf -- bash"
        self.register_outputs({"exec": self.exec})
