"""Try and measure the models: Open WebUI (a chat front end for every deployed model) and an AIPerf pod."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from planning import aiperf, versions
from planning.security import AIPERF_UID, by_digest, OPEN_WEBUI_UID, pod_security_labels, restricted_container, restricted_pod
from planning.scheduling import AMD64_NODE_SELECTOR, CPU_POOL_AFFINITY, DO_NOT_DISRUPT
from planning.workloads import CPU_POOL, OPEN_WEBUI_DATA_GB
from components.nim import NimNamespace
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
class AIPerfArgs:
    # The NIM namespace, so `--url http://nim-llm-<model>:8000` resolves; the pod runs there, beside the models.
    namespace: NimNamespace
    cpu_node_pool: k8s.apiextensions.CustomResource  # Karpenter's CPU NodePool, which it runs on
    image_digests: dict[str, str] = field(default_factory=dict)  # config image_digests: pull by digest when given


class AIPerf(pulumi.ComponentResource):
    """A pod that stays up with NVIDIA's AIPerf (planning/versions.py AIPERF_VERSION), for `kubectl exec ... aiperf
    profile` runs (planning/aiperf.py has the commands).

    Not `aiperf kube`, AIPerf's own Kubernetes mode (aiperf 0.13.0 `aiperf kube profile`): it deploys each benchmark
    from the user's machine as a JobSet (the JobSet controller and CRDs must be installed cluster-wide) or through its
    operator (a Helm chart with its CRDs), creating Namespaces, Roles, RoleBindings and ConfigMaps per run; its pods
    would come from outside this program, so outside its Pod Security, placement and NetworkPolicy checks. It is
    built to spread load generation over many pods (beyond one node's connection limits); the blueprint's test is 10
    concurrent requests, which one pod carries easily."""

    def __init__(self, name: str, args: AIPerfArgs, opts: pulumi.ResourceOptions | None = None):
        # Stacks made before AIPerf replaced GenAI-Perf know this component as GenAiPerf `<cluster>-genai-perf`: the
        # alias keeps it the same resource, and its Deployment too (the SDK derives the child's old URN from the
        # parent's alias, its name's prefix swapped: `<cluster>-genai-perf-deployment`).
        old_name = name.removesuffix("-aiperf") + "-genai-perf"
        renamed = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_="nim-on-eks:index:GenAiPerf", name=old_name)])
        super().__init__("nim-on-eks:index:AIPerf", name, None, pulumi.ResourceOptions.merge(opts, renamed))
        ns = args.namespace.name
        labels = {"app.kubernetes.io/name": aiperf.NAME, "app.kubernetes.io/part-of": "nim-on-eks"}
        image = by_digest(versions.AIPERF_IMAGE, args.image_digests)
        # Writable: the venv and artifacts (`work`, HOME too: the Hugging Face tokenizer cache), and `tmp`: pip's
        # downloads, and what AIPerf keeps under tempfile's directory while it runs (its services' ZMQ IPC sockets and
        # the memory-mapped dataset, /tmp/aiperf_mmap_*, as a run against tools/fake_openai.py showed). The root stays
        # read-only.
        mounts = [{"name": "work", "mountPath": aiperf.WORK_DIR}, {"name": "tmp", "mountPath": "/tmp"}]
        env = [{"name": "HOME", "value": aiperf.WORK_DIR},
               # a Hugging Face token for gated tokenizers, from a Secret the user may create (README): never on an
               # `exec` command line, which the API server's audit log records
               {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": aiperf.HF_TOKEN_SECRET, "key": "HF_TOKEN",
                                                                   "optional": True}}},
               {"name": "PATH", "value": f"{aiperf.VENV_DIR}/bin:/usr/local/bin:/usr/bin:/bin"},
               {"name": "PIP_NO_CACHE_DIR", "value": "1"}, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}]
        # The install, before the pod is ready: the pinned release from PyPI (through the NAT gateway: the nim
        # namespace's egress allows 443 outside the VPC, planning/flows.py nim_egress), wheels only (planning/
        # versions.py AIPERF_ARCHES says why). 229 MB of wheels, 1.2 GB installed, about 1.5 minutes on an x86 host with
        # a fast link (measured here, 2026-11-27): once per pod start, the venv goes with the pod.
        install = {
            "name": "install-aiperf",
            "image": image,
            "command": ["sh", "-c", f"python -m venv {aiperf.VENV_DIR} && {aiperf.VENV_DIR}/bin/pip install --only-binary="
                                    f":all: --disable-pip-version-check -c {aiperf.CONSTRAINTS_DIR}/constraints.txt "
                                    f"aiperf=={versions.AIPERF_VERSION}"],
            "env": env,
            "resources": {"requests": CPU_POOL["aiperf"].main.as_k8s(), "limits": {"cpu": "4", "memory": "8Gi"}},
            "volumeMounts": [*mounts, {"name": "constraints", "mountPath": aiperf.CONSTRAINTS_DIR, "readOnly": True}],
            "securityContext": restricted_container(read_only_root=True),
        }
        constraints = k8s.core.v1.ConfigMap(
            f"{name}-constraints",
            metadata={"name": f"{aiperf.NAME}-constraints", "namespace": ns, "labels": labels},
            data={"constraints.txt": aiperf.constraints()},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.namespace]))
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={"name": aiperf.NAME, "namespace": ns, "labels": labels},
            spec={
                "replicas": 1,
                "selector": {"matchLabels": labels},
                # a changed constraints file re-installs (a new pod); consolidating the CPU pool must not kill a
                # benchmark mid-run, its results (on the emptyDir) and its install with it
                "template": {"metadata": {"labels": labels, "annotations": {
                    "nim-on-eks/aiperf-constraints": aiperf.constraints_digest(), **DO_NOT_DISRUPT}}, "spec": {
                    "affinity": CPU_POOL_AFFINITY,  # it measures an HTTP endpoint: no GPU needed
                    "nodeSelector": AMD64_NODE_SELECTOR,  # installs on amd64 only (planning/versions.py AIPERF_ARCHES)
                    "automountServiceAccountToken": False,  # it measures NIM over HTTP, never calls the API
                    # The Python image runs as root by default; nothing here needs root: `sleep`, pip into the venv,
                    # and aiperf, which writes under the working directory and HOME, both the emptyDir `work`.
                    "securityContext": restricted_pod(AIPERF_UID, fs_group=False),
                    "initContainers": [install],
                    "containers": [{
                        "name": "aiperf",
                        "image": image,
                        "command": ["sleep", "infinity"],
                        "workingDir": aiperf.WORK_DIR,
                        "env": env,
                        "resources": {"requests": CPU_POOL["aiperf"].main.as_k8s(),
                                      "limits": {"cpu": "4", "memory": "8Gi"}},
                        "volumeMounts": mounts,
                        "securityContext": restricted_container(read_only_root=True),
                    }],
                    # the venv (~1.2 GB), a tokenizer per model family, and the runs' artifacts
                    "volumes": [{"name": "work", "emptyDir": {"sizeLimit": "10Gi"}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}},
                                {"name": "constraints", "configMap": {"name": f"{aiperf.NAME}-constraints"}}],
                    "terminationGracePeriodSeconds": 5,
                }},
            },
            # a new x86 node, then the install from PyPI, before the pod is ready: more than Pulumi's default 10 minutes
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.namespace, args.cpu_node_pool, constraints],
                                        custom_timeouts=pulumi.CustomTimeouts(create="20m", update="20m")),
        )
        self.exec = f"kubectl -n {ns} exec -it deploy/{aiperf.NAME} -- bash"
        self.copy_results = aiperf.copy_command(ns)
        self.register_outputs({"exec": self.exec, "copy_results": self.copy_results})
