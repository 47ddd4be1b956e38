"""How the pods this program renders itself are hardened, and the Pod Security level each namespace enforces.

Plain data and pure helpers; the components put them in their pod specs, tests/pod_security.py checks every pod of
the plan (and every chart's render) against the level its namespace enforces.
"""

from __future__ import annotations

import json
import re
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
# NIM's /dev/shm: a memory-backed emptyDir (NCCL and the engine share tensors through it), whose files count against
# the container's memory limit (kubernetes.io/docs/concepts/storage/volumes/#emptydir), so the limit adds its size.
NIM_SHM_GIB = 16


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
