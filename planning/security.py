"""How the pods this program renders itself are hardened, and the Pod Security level each namespace enforces.

Plain data and pure helpers; the components put them in their pod specs, tests/pod_security.py checks every pod of
the plan (and every chart's render) against the level its namespace enforces.
"""

from __future__ import annotations

from typing import Any

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
# GenAI-Perf's uid/gid: `sleep` and the genai-perf CLI need no account; HOME and the working directory are emptyDirs.
GENAI_PERF_UID = 1000

# NIM's host memory limit, as a multiple of its request (the catalog's memory_gib, what a loaded model uses). The
# limit stops a leak before it takes the memory of the other replicas a multi-GPU node carries and the node's own
# reserve; twice the request leaves room for the peaks of a model load (weights staged through host memory before
# they go to the GPUs). Page cache of the weights read from EFS is reclaimable and does not OOM-kill the pod.
NIM_MEMORY_LIMIT_FACTOR = 2

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
