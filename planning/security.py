"""How the pods this program renders itself are hardened, and the Pod Security level each namespace enforces.

Plain data and pure helpers; the components put them in their pod specs, tests/pod_security.py checks every pod of
the plan (and every chart's render) against the level its namespace enforces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from planning import versions
from planning.versions import SUPPORTED_EKS_VERSIONS

# Pod Security Admission checks a namespace against the profile as defined at this Kubernetes version, so a cluster
# upgrade never tightens (or loosens) the rules under running pods unannounced (kubernetes.io/docs/concepts/security/
# pod-security-admission, "Pod Security Admission labels for namespaces": `<mode>-version`). The oldest EKS version
# this program supports: every supported cluster knows it.
POD_SECURITY_VERSION = "v" + min(SUPPORTED_EKS_VERSIONS, key=lambda v: tuple(int(p) for p in v.split(".")))

# What `restricted` asks of every container (kubernetes.io/docs/concepts/security/pod-security-standards):
# no privilege escalation, every capability dropped, non-root, seccomp RuntimeDefault (set once on the pod).
RESTRICTED_CONTAINER: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                        "runAsNonRoot": True}
RUNTIME_DEFAULT_SECCOMP = {"type": "RuntimeDefault"}

# Open WebUI's uid/gid. The official image is built with its UID/GID build args at their default 0 (open-webui
# Dockerfile: `ARG UID=0`, `USER $UID:$GID`); it runs as any uid whose data path is writable: DATA_DIR
# (/app/backend/data, backend/open_webui/env.py) holds the database and, through HF_HOME, SENTENCE_TRANSFORMERS_HOME
# and WHISPER_MODEL_DIR (Dockerfile ENV), its model caches. The volume is made the group's by fsGroup.
OPEN_WEBUI_UID = 1000
# AIPerf's uid/gid: `sleep`, pip and the aiperf CLI need no account; HOME, the venv and the working directory are
# emptyDirs.
AIPERF_UID = 1000

# NIM's host memory limit, as a multiple of its request (the catalog's memory_gib, what a loaded model uses). The
# limit stops a leak before it takes the memory of the other replicas a multi-GPU node carries and the node's own
# reserve; twice the request leaves room for the peaks of a model load (weights staged through host memory before
# they go to the GPUs). Page cache of the weights read from EFS is reclaimable and does not OOM-kill the pod.
NIM_MEMORY_LIMIT_FACTOR = 2
# NIM's /dev/shm: a memory-backed emptyDir (NCCL and the engine share tensors through it), whose files count against
# the container's memory limit (kubernetes.io/docs/concepts/storage/volumes/#emptydir), so the limit adds its size.
NIM_SHM_GIB = 16


# NIM's root filesystem stays writable (its server and the pre-cache Job, which runs the same image): no NVIDIA source
# lists the paths a NIM for LLMs 1.x image writes besides the cache and /dev/shm, and a path missed fails the model as
# it loads, on a paid GPU. Checked (2026-11): NVIDIA/k8s-nim-operator @ f63f74d7 renders NIMService pods with only
# the cache, /dev/shm (and /scratch for sidecars) mounted, sets no readOnlyRootFilesystem, gives NIM an OpenShift SCC
# with `readOnlyRootFilesystem: false` (manifests/scc.yaml), and points OUTLINES_CACHE_DIR at /tmp/outlines (so NIM
# writes under /tmp of the image); its NIMCache Job is hardened as ours, also writable; an open request to make the
# pods' securityContext settable for read-only-root policies (k8s-nim-operator#635). NVIDIA/nim-deploy helm/nim-llm
# @ be34031c (the chart's last version there): the same mounts and OUTLINES_CACHE_DIR, its example container context
# `readOnlyRootFilesystem: false`. NIM for LLMs docs: the 2.x environment-variable reference (2.1.5-pb7) announces a
# section on writable paths (for 2.x images, and not readable here in full); for the catalog's 1.x images we found
# none (configuration pages 1.10.0, 1.12.0). tests/test_nim.py keeps both containers as recorded here.
NIM_READ_ONLY_ROOT = False


def nim_memory_limit_gib(memory_gib: int) -> int:
    """NIM's host memory limit: twice what a loaded model uses, plus all of /dev/shm."""
    return memory_gib * NIM_MEMORY_LIMIT_FACTOR + NIM_SHM_GIB

LEVELS = ("privileged", "baseline", "restricted")


def pod_security_labels(enforce: str) -> dict[str, str]:
    """The namespace labels that enforce `enforce` (pinned) and warn and audit at `restricted`: a pod below restricted
    in a less strict namespace still shows in `kubectl` warnings and the audit log."""
    if enforce not in LEVELS:
        raise ValueError(f"unknown Pod Security level {enforce!r}; one of {LEVELS}")
    return {
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/enforce-version": POD_SECURITY_VERSION,
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": POD_SECURITY_VERSION,
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": POD_SECURITY_VERSION,
    }


def restricted_pod(uid: int, *, fs_group: bool = True) -> dict[str, Any]:
    """A pod securityContext for `restricted`: non-root as `uid` (and gid), seccomp RuntimeDefault, and the pod's
    volumes given to that group (fsGroup) when the pod writes to a volume; only on a mismatch, so a large volume is
    not walked on every start."""
    sc: dict[str, Any] = {"runAsUser": uid, "runAsGroup": uid, "runAsNonRoot": True,
                          "seccompProfile": dict(RUNTIME_DEFAULT_SECCOMP)}
    if fs_group:
        sc |= {"fsGroup": uid, "fsGroupChangePolicy": "OnRootMismatch"}
    return sc


def restricted_container(read_only_root: bool) -> dict[str, Any]:
    return {**RESTRICTED_CONTAINER, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": read_only_root}


# An image reference as the program pins it (repository:tag), and an OCI content digest of sha256 (64 hex digits).
IMAGE_RE = re.compile(r"[a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def digest_map(raw: Any) -> dict[str, str]:
    """`image_digests`: a JSON map from an image as pinned (`repository:tag`) to the `sha256:` digest to pull it by.
    Raises ValueError saying what is allowed (planning/config.py wraps it as the key's problem)."""
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        value = None
    example = '{"ghcr.io/open-webui/open-webui:v0.6.43": "sha256:<64 hex digits>"}'
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"allowed: a JSON map from image to digest, e.g. {example}")
    bad_images = [k for k in value if "@" in k or not IMAGE_RE.fullmatch(k)]
    bad_digests = [k for k, v in value.items() if not DIGEST_RE.fullmatch(v)]
    if bad_images or bad_digests:
        raise ValueError(
            f"{', '.join(bad_images + bad_digests)}: allowed: keys are images as pinned (repository:tag, no digest) "
            f"and values sha256:<64 lowercase hex digits>, e.g. {example}")
    return dict(value)


def by_digest(image: str, digests: dict[str, str]) -> str:
    """The reference to pull `image` by: `repository:tag@sha256:...` when its digest is given (the runtime checks
    the content against the digest and ignores the tag), else the tag alone."""
    return f"{image}@{digests[image]}" if image in digests else image


# --- the images the pinned charts run, and the values key (if any) that pulls each by digest
# Each chart builds the reference from its own keys; the digest's form is the chart's: HEX (the template writes
# `@sha256:` before the value) or PREFIXED (the value is `sha256:<hex>` and the template writes only `@`). Checked in
# the charts' templates at the pinned versions (../shared/charts; the Grafana, kube-state-metrics and node-exporter
# sub-charts, absent there, at their upstream tags, and rendered once with them in place: every image came out as
# repository:tag@sha256:<given>). tests/test_image_digests.py renders what ../shared/charts holds.
HEX, PREFIXED = "hex", "prefixed"
KPS_TEMPLATES = "kube-prometheus-stack 88.5.3 templates/"
GRAFANA_POD = "grafana chart 12.11.1 (grafana-community/helm-charts tag grafana-12.11.1 @ 864f7794) templates/_pod.tpl"


@dataclass(frozen=True)
class DigestKey:
    """Where a chart takes an image's digest: `path` (dotted, in the release's values) and the value's form."""

    chart: str
    path: str
    form: str  # HEX or PREFIXED
    source: str

    def value(self, digest: str) -> str:
        return digest.removeprefix("sha256:") if self.form == HEX else digest


@dataclass(frozen=True)
class NoDigestKey:
    """A chart image the chart can only pull by tag, and where that was checked."""

    chart: str
    source: str


KPS = versions.KUBE_PROMETHEUS_STACK.name
CHART_IMAGE_DIGESTS: dict[str, DigestKey | NoDigestKey] = {
    # The chart already pins this image by its own digest (values.yaml controller.image.digest); a user's replaces it.
    "public.ecr.aws/karpenter/controller:1.14.1": DigestKey(
        versions.KARPENTER.name, "controller.image.digest", PREFIXED,
        "karpenter 1.14.1 templates/_helpers.tpl karpenter.controller.image: repository:tag@digest"),
    "quay.io/prometheus/prometheus:v3.14.0-distroless": DigestKey(
        KPS, "prometheus.prometheusSpec.image.sha", HEX, KPS_TEMPLATES + "prometheus/prometheus.yaml"),
    "quay.io/prometheus/alertmanager:v0.34.0": DigestKey(
        KPS, "alertmanager.alertmanagerSpec.image.sha", HEX, KPS_TEMPLATES + "alertmanager/alertmanager.yaml"),
    "quay.io/prometheus-operator/prometheus-operator:v0.93.1": DigestKey(
        KPS, "prometheusOperator.image.sha", HEX, KPS_TEMPLATES + "prometheus-operator/deployment.yaml"),
    "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1": DigestKey(
        KPS, "prometheusOperator.prometheusConfigReloader.image.sha", HEX,
        KPS_TEMPLATES + "prometheus-operator/deployment.yaml (the operator's --prometheus-config-reloader)"),
    "ghcr.io/jkroepke/kube-webhook-certgen:1.8.7": DigestKey(
        KPS, "prometheusOperator.admissionWebhooks.patch.image.sha", HEX,
        KPS_TEMPLATES + "prometheus-operator/admission-webhooks/job-patch/"),
    "docker.io/grafana/grafana:13.2.0": DigestKey(KPS, "grafana.image.sha", HEX, GRAFANA_POD),
    "quay.io/kiwigrid/k8s-sidecar:2.10.1": DigestKey(KPS, "grafana.sidecar.image.sha", HEX, GRAFANA_POD),
    "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0": DigestKey(
        KPS, "kube-state-metrics.image.sha", PREFIXED,
        "kube-state-metrics chart 8.4.0 (prometheus-community/helm-charts tag kube-state-metrics-8.4.0 @ 1982f1c5) "
        "templates/_helpers.tpl kube-state-metrics.image: repository:tag@sha"),
    # image.sha is refused by this chart ("image.sha forbidden. Use image.digest instead")
    "quay.io/prometheus/node-exporter:v1.12.1-distroless": DigestKey(
        KPS, "prometheus-node-exporter.image.digest", PREFIXED,
        "prometheus-node-exporter chart 4.56.1 (prometheus-community/helm-charts tag prometheus-node-exporter-4.56.1 "
        "@ 8b8e639c) templates/_helpers.tpl prometheus-node-exporter.image: repository:tag-distroless@digest"),
    "nvcr.io/nvidia/k8s-device-plugin:v0.20.0": NoDigestKey(
        versions.NVIDIA_DEVICE_PLUGIN.name,
        "values.yaml image: repository, tag; templates/_helpers.tpl fullimage is repository:tag"),
    "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless": NoDigestKey(
        versions.DCGM_EXPORTER.name, "values.yaml image: repository, tag; templates/daemonset.yaml repository:tag"),
    **{image: NoDigestKey(
        versions.KEDA_HTTP_ADD_ON.name if "/http-add-on-" in image else versions.KEDA.name,
        "keda values.yaml image.<component>: registry, repository, tag; keda-add-ons-http values.yaml images: one "
        "tag for all; the deployments' templates write repository:tag") for image in versions.KEDA_IMAGE_PLATFORMS},
    versions.AWS_LOAD_BALANCER_CONTROLLER_IMAGE: NoDigestKey(
        versions.AWS_LOAD_BALANCER_CONTROLLER.name, "values.yaml image: repository, tag; templates/deployment.yaml "
                                                    "writes repository:tag"),
    "docker.io/envoyproxy/gateway:v1.9.0": NoDigestKey(
        versions.ENVOY_GATEWAY.name, "values.yaml deployment.envoyGateway.image: repository, tag; templates/"
                                     "_helpers.tpl eg.image prints repository:tag"),
    **{image: NoDigestKey(versions.AI_GATEWAY.name, "values.yaml controller.image and extProc.image: repository, tag; "
                                                    "templates/deployment.yaml writes repository:tag (the external "
                                                    "processor's as the controller's --extProcImage)")
       for image in ("docker.io/envoyproxy/ai-gateway-controller:v1.1.0", versions.EXTPROC_IMAGE)},
    # started by EG at run time with its built-in defaults (api/v1alpha1/shared_types.go); the program does not
    # override them, so a digest would have nowhere to go
    **{image: NoDigestKey(versions.ENVOY_GATEWAY.name, "EG v1.9.0 DefaultEnvoyProxyImage, DefaultRateLimitImage")
       for image in (versions.ENVOY_PROXY_IMAGE, versions.RATELIMIT_IMAGE)},
}


def chart_digest_values(chart: str, digests: dict[str, str]) -> dict[str, Any]:
    """The values that pull `chart`'s images by the digests given (nested, to merge into the release's values);
    empty when none of its images has one, so a stack without image_digests renders exactly as before."""
    out: dict[str, Any] = {}
    for image, where in CHART_IMAGE_DIGESTS.items():
        if isinstance(where, DigestKey) and where.chart == chart and image in digests:
            *parents, leaf = where.path.split(".")
            node = out
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = where.value(digests[image])
    return out


def stack_charts(monitoring: bool, http_add_on: bool, gateway: bool) -> set[str]:
    """The charts a stack installs (__main__.py): Karpenter, the device plugin and KEDA always, the monitoring
    charts with monitoring, the HTTP add-on when a model is reached through its interceptor, Envoy Gateway and the
    AI Gateway with the gateway."""
    return ({versions.KARPENTER.name, versions.NVIDIA_DEVICE_PLUGIN.name, versions.KEDA.name}
            | ({KPS, versions.DCGM_EXPORTER.name} if monitoring else set())
            | ({versions.KEDA_HTTP_ADD_ON.name} if http_add_on else set())
            | ({versions.ENVOY_GATEWAY.name, versions.AI_GATEWAY.name, versions.AWS_LOAD_BALANCER_CONTROLLER.name}
               if gateway else set()))


def digest_problems(digests: dict[str, str], own_images: set[str], charts: set[str]) -> list[str]:
    """What is wrong with `image_digests` for a stack that renders `own_images` itself and installs `charts`: a key
    naming no image of the stack, or an image whose chart cannot take a digest. Each problem names the key."""
    by_chart = {image: where for image, where in CHART_IMAGE_DIGESTS.items() if where.chart in charts}
    allowed = sorted(own_images | {i for i, w in by_chart.items() if isinstance(w, DigestKey)})
    problems = []
    if unused := sorted(set(digests) - own_images - set(by_chart)):
        problems.append(f"image_digests: {', '.join(unused)} is no image of this stack; allowed: {', '.join(allowed)}")
    for image in sorted(set(digests) - own_images):
        if isinstance(where := by_chart.get(image), NoDigestKey):
            problems.append(
                f"image_digests: {image}: {digests[image]} cannot be used: its chart ({where.chart}) has no values key "
                f"for a digest ({where.source}), so it runs by its pinned tag; allowed: {', '.join(allowed)}")
    return problems
