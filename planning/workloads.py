"""Facts about the workloads that more than one part of the program must agree on: NIM's uid (the NIM pods run as
it, the EFS access points of the model cache map every client to it), the size of Open WebUI's data volume (the
component requests it, the cost estimate prices it), and what each workload on Karpenter's CPU NodePool requests
(CPU_POOL, and CPU_POOL_JOBS for the pre-cache Jobs: the component's values and the cost estimate read the same
entry). Plain data; scheduling facts live in planning/scheduling.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

# NIM containers run as uid/gid 1000 (NVIDIA NIM for LLMs docs; FACTS.md); the EFS access points map clients to it.
NIM_UID = 1000
# Open WebUI's volume: accounts, chats, settings and its embedding model (gp3, GiB).
OPEN_WEBUI_DATA_GB = 10


@dataclass(frozen=True)
class PoolWorkload:
    """A workload on Karpenter's CPU NodePool: what its pods request (each), how many run, and the condition it runs
    under (None: always; else a StackConfig switch, or a condition named in planning/scaling.py). The component
    puts these very figures in its values; the cost estimate sizes the CPU pool from them."""

    name: str
    cpu_m: int
    memory_mib: int
    replicas: int = 1
    when: str | None = None


# KEDA 2.20.2: requests as the chart's defaults (keda values.yaml `resources.*`, also keda.sh/docs/2.20/operate/
# cluster); one replica each (the chart's default: the operator is leader-elected, its metrics server and webhooks
# serve the API server, which retries). The HTTP add-on 0.15.0: the interceptor proxies every request to a model at
# zero, so two replicas (a node drain or spot interruption never leaves none); the external scaler only answers KEDA
# (one: if it restarts, scaling waits a moment); no operator (only HTTPScaledObject needs it; components/scaling.py).
# The add-on's requests are below its chart defaults (250m each, 1.75 CPU for its default seven pods); its limits
# (components/scaling.py) leave room for bursts of traffic.
HTTP_ADD_ON = "http_add_on"  # the condition: planning/scaling.needs_interceptor (a model at zero, or monitoring off)
CPU_POOL: dict[str, PoolWorkload] = {w.name: w for w in (
    PoolWorkload("keda-operator", cpu_m=100, memory_mib=100),
    PoolWorkload("keda-operator-metrics-apiserver", cpu_m=100, memory_mib=100),
    PoolWorkload("keda-admission-webhooks", cpu_m=100, memory_mib=100),
    PoolWorkload("keda-add-ons-http-interceptor", cpu_m=100, memory_mib=64, replicas=2, when=HTTP_ADD_ON),
    PoolWorkload("keda-add-ons-http-external-scaler", cpu_m=50, memory_mib=32, when=HTTP_ADD_ON),
)}


# The pre-cache Job of a model (components/precache.py): one pod per model, only until its cache is filled, then
# none. download-to-cache streams from NGC to EFS: network and disk bound, so one vCPU; 2 GiB leaves room for the
# NIM tooling (Python) and hashing. These sizes are our estimate (the NIM Operator's caching Job takes whatever its
# NIMCache asks, its samples ask nothing: k8s-nim-operator @ f63f74d7, config/samples). The memory limit stops a
# runaway download from starving its node's neighbours.
PRECACHE_JOB = PoolWorkload(name="nim-precache", cpu_m=1000, memory_mib=2048, when="per model with precache")
PRECACHE_MEMORY_LIMIT_MIB = 4096
# Workloads that come and go (Jobs): the pool needs room for them while they run, not while the stack idles.
CPU_POOL_JOBS: dict[str, PoolWorkload] = {PRECACHE_JOB.name: PRECACHE_JOB}

# How fast a model's weights come from NGC into EFS: an ESTIMATE, no published figure. NGC publishes no download
# rate; the EFS side is not the limit (Elastic throughput, 1,500 MiB/s per client through the EFS CSI driver:
# docs.aws.amazon.com/efs/latest/ug/performance.html). 50 MiB/s (~420 Mbit/s) is deliberately low, as the timeouts
# built from it must not cut a slow but healthy download short.
PRECACHE_DOWNLOAD_MIB_S = 50
# A CPU node launch and the NIM image pull before the download starts, the same allowance a first GPU start gets
# (components/nim.py). NIM image sizes are not published; an uncached 9.5 GB image took ~6 minutes to pull on an EKS
# node (aws-ia/terraform-aws-eks-blueprints, patterns/ml-container-cache): an estimate.
PRECACHE_START_MINUTES = 20


def precache_download_minutes(cache_gib: float, rate_mib_s: float = PRECACHE_DOWNLOAD_MIB_S) -> float:
    """Estimated minutes to download a model's cache (the catalog's cache size, GiB) at `rate_mib_s`."""
    return cache_gib * 1024 / rate_mib_s / 60


def precache_timeout_minutes(cache_gib: float) -> int:
    """How long `pulumi up` waits for a model's pre-cache Job (and how long the Job may run): a CPU node and the
    image, then the download at the estimated rate."""
    return PRECACHE_START_MINUTES + math.ceil(precache_download_minutes(cache_gib))
