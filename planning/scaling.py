"""How models scale, decided before anything is created: pure facts and functions, no resources.

KEDA scales every model's StatefulSet (components/scaling.py). A model with `min_replicas: 0` can be at zero; the
KEDA HTTP add-on's interceptor then holds its first request until a replica is Ready. What each model scales on:

| monitoring | wakes from zero on (min_replicas 0)        | between 1 and max_replicas, replicas follow            |
| ---------- | ------------------------------------------ | ------------------------------------------------------ |
| on         | a request through the interceptor          | KV-cache use (target_kv_cache_percent), plus in-flight |
|            |                                            | requests when target_requests_running is set           |
| off        | a request through the interceptor          | in-flight requests through the interceptor             |
|            |                                            | (target_requests_running, default 25)                  |

With monitoring off every model goes through the interceptor, min_replicas >= 1 too: its request count is then the
only load signal there is, and routing costs one in-cluster hop. With monitoring on, a model that never scales to
zero is reached directly (no extra hop) and scales on NIM's own metrics from Prometheus.

Where each figure comes from is said beside it; the cost estimate reads `can_scale_to_zero` and CPU_POOL
(planning/workloads.py).
"""

from __future__ import annotations

import math
from typing import Iterable, Protocol

# NVIDIA's guidance for autoscaling NIM for LLMs: the NIM Operator's autoscaling samples scale on
# `gpu_cache_usage_perc` (the share of the GPU KV cache in use, 0 to 1) with a target value of 0.5
# (NVIDIA/k8s-nim-operator @ f63f74d7, config/samples/nim/serving/standalone/autoscaling/llm.yaml, also full/llm.yaml
# and multi-llm.yaml). NVIDIA's blog "Horizontal Autoscaling of NVIDIA NIM Microservices on Kubernetes" scales on the
# same metric. The old blueprint's 5 running requests per replica is far below what NIM batches on one GPU.
DEFAULT_TARGET_KV_CACHE_PERCENT = 50

# In-flight requests per replica when they are the only signal (monitoring off) and target_requests_running is not
# set. An estimate from NVIDIA's NIM benchmarks (docs.nvidia.com/nim/benchmarking/llm/1.0.0/performance): time to
# first token stays below 0.7 s up to 25 concurrent requests in every published run (Llama 3.1 8B, 3.1 70B, 3.3 70B
# on H100), and for Llama 3.3 70B jumps from 0.8 s at 50 to 8 s at 100. Smaller GPUs (L4, A10G) saturate earlier:
# measure with AIPerf (README, Try it) and set target_requests_running.
DEFAULT_CONCURRENCY_TARGET = 25
# The interceptor's concurrency target when another signal decides the replica count (monitoring on, no
# target_requests_running): the largest value the InterceptorRoute's int32 field holds, so in-flight requests only
# wake the model and keep it awake (any request makes the trigger active), and never add replicas themselves.
WAKE_ONLY_CONCURRENCY = 2**31 - 1

# How long a model with min_replicas 0 must see no request before it goes to zero (the stack default,
# `scale_to_zero_idle_minutes`). A cold start bills its GPU node for about 10 minutes before the model serves, all
# estimates: the node 1.5-3 minutes, a NIM image 5-8 minutes (a 9.5 GB image took 334 s, below), ~80 s to load an 8B
# model from EFS (below). Idling 20 minutes costs about two cold starts' worth of GPU time, and spares users a cold
# start in ordinary pauses. Karpenter then removes the empty GPU node after its consolidateAfter (5 minutes,
# components/karpenter.py).
DEFAULT_IDLE_MINUTES = 20
# Fewer minutes than a cold start takes would make a model thrash between zero and one; KEDA's own default
# cooldownPeriod is 300 s (KEDA 2.20 docs, reference/scaledobject-spec).
MIN_IDLE_MINUTES = 5
MAX_IDLE_MINUTES = 24 * 60

# The longest a cold start may take before the interceptor gives up on a held request with 504 Gateway Timeout.
# Upper bounds, not estimates (the cost estimate states the typical figures):
# - a GPU node: Karpenter's launch, the node Ready, the NVIDIA device plugin advertising the GPU. Non-GPU EKS nodes
#   register in 40-80 s (awslabs/amazon-eks-ami#1099, aws/karpenter-provider-aws#3102, #6128) and GPU instances boot
#   slower; 90-180 s is an estimate, doubled here.
GPU_NODE_LIMIT_S = 300
# - the NIM image onto the new node's empty disk: NGC does not publish NIM image sizes; a 9.5 GB (compressed) CUDA
#   image took 334 s on an EKS node (aws-ia/terraform-aws-eks-blueprints, patterns/ml-container-cache), ~28 MB/s
#   with unpacking. 15 GB at that rate is ~9 minutes.
IMAGE_PULL_LIMIT_S = 600
# - the weights from the EFS cache: 500 MiB/s is EFS's per-client read rate without efs-utils 2 or the CSI driver's
#   efs-proxy (1,500 MiB/s with it, elastic throughput; docs.aws.amazon.com/efs/latest/ug/performance.html): the
#   slower figure, over the model's whole cache volume (catalog cache_gib, which holds the weights with room).
EFS_READ_MIB_S = 500
# - NIM's own start once the weights are read (engine, warm-up): ~80 s from pod start to ready for Llama 3.1 8B on
#   EFS in ai-on-eks (website/docs/ai/inference/GPUs/nvidia-nim-operator.md @ 41a979ee); bounded at 5 minutes.
NIM_START_LIMIT_S = 300


class Scalable(Protocol):
    name: str
    min_replicas: int


def can_scale_to_zero(model: Scalable) -> bool:
    """Whether the model may be at zero replicas (no GPU node) when idle: the cost estimate's idle figure."""
    return model.min_replicas == 0


def routed_through_interceptor(model: Scalable, monitoring: bool) -> bool:
    """Whether the model's URL goes through the HTTP add-on's interceptor: to wake it from zero, or, with monitoring
    off, because the interceptor's request count is the only load signal."""
    return can_scale_to_zero(model) or not monitoring


def needs_interceptor(models: Iterable[Scalable], monitoring: bool) -> bool:
    """Whether the stack needs the HTTP add-on at all (its pods cost CPU-pool capacity)."""
    return any(routed_through_interceptor(m, monitoring) for m in models)


def concurrency_target(target_requests_running: int | None, monitoring: bool) -> int:
    """In-flight requests per replica the interceptor's trigger aims at (see the table above)."""
    if target_requests_running is not None:
        return target_requests_running
    return WAKE_ONLY_CONCURRENCY if monitoring else DEFAULT_CONCURRENCY_TARGET


def cold_start_limit_seconds(cache_gib: int) -> int:
    """The longest a request may wait for a model at zero: a GPU node, the image, the weights, NIM's start (each
    bounded above), rounded up to whole minutes."""
    load = cache_gib * 1024 / EFS_READ_MIB_S
    total = GPU_NODE_LIMIT_S + IMAGE_PULL_LIMIT_S + load + NIM_START_LIMIT_S
    return math.ceil(total / 60) * 60


def scaling_warnings(models: Iterable[Scalable], monitoring: bool) -> list[str]:
    """What `pulumi up` and the plan say when monitoring is off: every model then scales on requests alone."""
    names = ", ".join(m.name for m in models)
    if monitoring or not names:
        return []
    return [f"monitoring is off: {names} scale on in-flight requests through the KEDA HTTP add-on's interceptor "
            "(target_requests_running per replica, default "
            f"{DEFAULT_CONCURRENCY_TARGET}), not on NIM's KV-cache use, and every model's URL goes through it"]
