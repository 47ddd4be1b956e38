"""Never pay a GPU to download: a model's pre-cache Job fills its EFS cache on a CPU node before its first GPU
replica starts.

The Job runs the model's own NIM image (the one image that has its manifest and NIM's `download-to-cache`) on
Karpenter's CPU pool. Its program is planning/nim_profiles.py, shipped verbatim as the container's argument: it
reads the image's model manifest, picks the profile(s) NIM would choose on each GPU type the model may run on with
its GPU count (or the profile pinned with NIM_MODEL_PROFILE in the model's env), and downloads each one not yet
marked complete in the cache. In the container's args rather than a ConfigMap: the program is part of the Job's
pod template, so any change to it (or to the image, GPU types, GPU count, env) replaces the Job and re-runs it, with
no ConfigMap to name, version and keep alive under a running Job; and `kubectl get job -o yaml` shows what ran.

How it fits Pulumi (pulumi-kubernetes; its source read at pulumi/pulumi-kubernetes @ 94977969, provider/pkg):
- `pulumi up` waits for the Job to complete: the batch/v1 Job awaiter (await/job.go) returns once the Job's
  `Complete` condition is True and fails at once on `Failed`; its default wait is 10 minutes, so the Job gets a
  custom timeout sized from the download (planning/workloads.py). The StatefulSet depends on the Job, so no GPU
  replica is created before the cache is filled.
- An unchanged model is not downloaded again: the Job is diffed against its inputs and stays; it has no
  `ttlSecondsAfterFinished`, because a Job the cluster deleted would read as gone on `pulumi refresh` (the awaiter's
  Read returns the 404, and the provider drops the resource) and the next `up` would create it again.
- Any change to `.spec.template` replaces the Job (provider/diff.go lists it as force-new for batch/v1 Job), and a
  named Job is deleted before its replacement is created. That does not touch the StatefulSet: a dependent is
  replaced along with a delete-before-replace only when its inputs depend on the replaced resource, not for a
  plain depends_on (pulumi/pulumi pkg/resource/deploy/step_generator.go, calculateDependentReplacements).
- `pulumi.com/replaceUnready: "true"`: a Job that failed (a bad key, NGC down) is replaced on the next `pulumi up`
  instead of being waited on again (provider.go; pulumi/pulumi-kubernetes#856).
- Destroy: the provider deletes with foreground propagation by default (metadata/overrides.go,
  DeletionPropagation), so the Job's pods are gone before the Job is, and the Job goes before its cache claim and
  the volumes-released waiter (it depends on both), hence before the EFS driver and file system.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from planning import nim_profiles
from planning.catalog import CatalogModel
from planning.models import ModelRequest
from planning.scheduling import CPU_POOL_AMD64_AFFINITY, DO_NOT_DISRUPT
from planning.security import by_digest
from planning.workloads import NIM_UID, PRECACHE_JOB, PRECACHE_MEMORY_LIMIT_MIB, PRECACHE_START_MINUTES, \
    precache_timeout_minutes

# What the container runs: planning/nim_profiles.py, under the Python that runs NIM's own `download-to-cache` (a
# console script of NIM's virtualenv, e.g. /opt/nim/llm/.venv/bin, so its python3 has NIM's packages), else the
# first python3 on PATH. `sh -c` gives the program, the first argument, as $0.
SCRIPT = Path(nim_profiles.__file__).read_text()
# An image without any python3 cannot run it: say so and succeed, as the program does for what stops it.
LAUNCH = ('bin="$(dirname "$(command -v download-to-cache)")"; py="$bin/python3"; '
          '[ -x "$py" ] || py="$(command -v python3)" || { echo "PRE-CACHE SKIPPED: no python3 in this image. The '
          'model downloads on its first start, on its GPU node."; exit 0; }; exec "$py" -c "$0"')
# A NIM with LoRA adapters looks for LoRA profiles (NIM for LLMs docs, PEFT: NIM_PEFT_SOURCE).
LORA_ENV = "NIM_PEFT_SOURCE"
PIN_ENV = "NIM_MODEL_PROFILE"


def precache_off_reason(model: ModelRequest, entry: CatalogModel) -> str | None:
    """Why this model is not pre-cached, or None when it is."""
    if not entry.precache:
        return f"the catalog says it cannot be: {entry.precache_reason}"
    if not model.precache:
        return "its precache is false"
    return None


def job_spec(model: ModelRequest, entry: CatalogModel, *, claim: str, cache_path: str, pull_secret: str,
             api_key_secret: str, labels: dict[str, str], image_digests: dict[str, str] | None = None
             ) -> dict[str, Any]:
    """The Job's spec: one pod on the CPU pool that downloads the model's profiles into its cache claim."""
    env_given = dict(model.env)
    timeout_minutes = precache_timeout_minutes(entry.cache_gib)
    env = [
        {"name": "NGC_API_KEY", "valueFrom": {"secretKeyRef": {"name": api_key_secret, "key": "NGC_API_KEY"}}},
        {"name": "NIM_CACHE_PATH", "value": cache_path},
        # what the selection needs: the GPU types the model may run on and how many GPUs a replica gets
        {"name": "NIM_ON_EKS_GPU_TYPES", "value": json.dumps(list(model.gpu_types))},
        {"name": "NIM_ON_EKS_GPUS", "value": str(model.gpus)},
        {"name": "NIM_ON_EKS_LORA", "value": "true" if LORA_ENV in env_given else "false"},
        # the download's share of the Job's deadline (the rest is for a CPU node and the image)
        {"name": "NIM_ON_EKS_DOWNLOAD_SECONDS", "value": str((timeout_minutes - PRECACHE_START_MINUTES) * 60)},
    ]
    # The model's own NIM environment too (a pinned NIM_MODEL_PROFILE, a repository override, a proxy): the download
    # sees what the server would.
    env += [{"name": k, "value": v} for k, v in model.env]
    return {
        # A failed try (NGC throttling, a spot CPU node taken back) runs again; the download skips what is marked.
        "backoffLimit": 2,
        # The Job gives up when `pulumi up` does, so a stuck download does not outlive the wait for it.
        "activeDeadlineSeconds": timeout_minutes * 60,
        "template": {
            "metadata": {
                "labels": labels,
                # A consolidation of the CPU pool must not kill a download halfway: the annotation blocks voluntary
                # disruption of the pod's node while it runs (karpenter.sh reference, Well-Known Annotations).
                "annotations": DO_NOT_DISRUPT,
            },
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": "default",
                "automountServiceAccountToken": False,  # it never talks to the Kubernetes API
                "imagePullSecrets": [{"name": pull_secret}],
                "securityContext": {"runAsUser": NIM_UID, "runAsGroup": NIM_UID, "fsGroup": NIM_UID,
                                    "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                # NIM for LLMs documents x86_64 only (docs.nvidia.com/nim/large-language-models/24.05.rc15,
                # getting-started: "CPU: x86_64 architecture only"); arm64 builds of later releases are unconfirmed,
                # and every GPU node this stack launches is x86_64. So amd64 nodes of the CPU pool.
                "affinity": CPU_POOL_AMD64_AFFINITY,
                "containers": [{
                    "name": "precache",
                    "image": by_digest(f"{entry.image}:{model.image_tag}", image_digests or {}),
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", LAUNCH],
                    "args": [SCRIPT],
                    "env": env,
                    "resources": {
                        "requests": {"cpu": f"{PRECACHE_JOB.cpu_m}m", "memory": f"{PRECACHE_JOB.memory_mib}Mi"},
                        "limits": {"memory": f"{PRECACHE_MEMORY_LIMIT_MIB}Mi"},
                    },
                    "volumeMounts": [{"name": "model-store", "mountPath": cache_path}],
                    # a writable root, like the server's: the same image and download code (planning/security.py
                    # NIM_READ_ONLY_ROOT); left unset (false) rather than restated, which would replace every Job
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                        "runAsNonRoot": True},
                    # `kubectl describe` shows why it failed (the program's last lines)
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }],
                "volumes": [{"name": "model-store", "persistentVolumeClaim": {"claimName": claim}}],
            },
        },
    }


def precache_job(name: str, model: ModelRequest, entry: CatalogModel, *, namespace: str, claim: str,
                 cache_path: str, pull_secret: str, api_key_secret: str,
                 opts: pulumi.ResourceOptions, image_digests: dict[str, str] | None = None) -> k8s.batch.v1.Job:
    """The model's pre-cache Job, `<k8s name>-precache`, waited for by `pulumi up` (see the module docstring)."""
    app = model.k8s_name
    labels = {"app.kubernetes.io/name": "nim-llm-precache", "app.kubernetes.io/instance": app,
              "app.kubernetes.io/part-of": "nim-on-eks"}
    timeout = f"{precache_timeout_minutes(entry.cache_gib)}m"
    return k8s.batch.v1.Job(
        name,
        metadata={"name": f"{app}-precache", "namespace": namespace, "labels": labels,
                  "annotations": {"pulumi.com/replaceUnready": "true"}},
        spec=job_spec(model, entry, claim=claim, cache_path=cache_path, pull_secret=pull_secret,
                      api_key_secret=api_key_secret, labels=labels, image_digests=image_digests),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout))),
    )
