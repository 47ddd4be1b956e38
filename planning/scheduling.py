"""Where pods may run: the node-pool label every node carries, the GPU taint and its toleration, and the node
selectors and affinities built from them. Plain data; the components put it on nodes (cluster: the core node
group; karpenter: the GPU and CPU NodePools) and on pods (every workload and chart).

Where each fact comes from:
- `nim-on-eks/node-pool` (POOL_LABEL) is this project's own label: `core` on the managed node group, `gpu` and
  `cpu` on the nodes of Karpenter's two NodePools. Everything that must stay off GPU nodes selects on it.
- `nvidia.com/gpu.present=true` on GPU nodes: the NVIDIA device plugin chart's default node affinity accepts a
  node with it (nvidia-device-plugin 0.20.0 values.yaml, "allow a GPU deployment to be forced"); without GPU
  feature discovery nothing else sets it.
- The `nvidia.com/gpu:NoSchedule` taint on GPU nodes, so only pods that tolerate it (NIM, the device plugin, the
  DCGM exporter) land there; the device plugin chart tolerates the same taint by default.
- `CriticalAddonsOnly`: the device plugin chart's default toleration, restated because Helm replaces lists.
- `karpenter.k8s.aws/instance-gpu-*` and `karpenter.sh/capacity-type`: Karpenter's well-known node labels
  (instance GPU name, memory in MiB, count; spot or on-demand), which GPU fitting matches a model to.
"""

from __future__ import annotations

from typing import Any

from planning.gpus import GPU_TYPES

POOL_LABEL = "nim-on-eks/node-pool"  # core (the managed node group), gpu or cpu (Karpenter's pools)
# Label every core node carries; components pin system workloads to it so they never land on GPU nodes.
CORE_NODE_LABEL = {POOL_LABEL: "core"}
GPU_NODE_SELECTOR = {POOL_LABEL: "gpu"}
GPU_NODE_LABELS = {**GPU_NODE_SELECTOR, "nvidia.com/gpu.present": "true"}
CPU_NODE_LABELS = {POOL_LABEL: "cpu"}

GPU_TAINT = {"key": "nvidia.com/gpu", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
CRITICAL_ADDONS_TOLERATION = {"key": "CriticalAddonsOnly", "operator": "Exists"}

# Required node affinity of everything that must never land on a GPU node: the core nodes or the CPU pool.
NON_GPU_AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": POOL_LABEL, "operator": "In",
                           "values": [CORE_NODE_LABEL[POOL_LABEL], CPU_NODE_LABELS[POOL_LABEL]]}]}]}}}
# Any node but a GPU node: the core nodes or Karpenter's CPU pool (preferred, so the core stays small).
CPU_NODE_AFFINITY = {"nodeAffinity": {
    **NON_GPU_AFFINITY["nodeAffinity"],
    "preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {"matchExpressions": [
            {"key": POOL_LABEL, "operator": "In", "values": [CPU_NODE_LABELS[POOL_LABEL]]}]}}],
}}


def gpu_node_affinity(gpu_types: tuple[str, ...], gpus: int, capacity_types: tuple[str, ...]) -> dict[str, Any]:
    """Only GPU nodes whose GPU type holds the model with `gpus` GPUs, with at least that many, of the capacity types.

    One term per GPU type (terms are ORed); A100 40 GB and 80 GB share a name, so the memory per GPU tells them apart.
    """
    terms = []
    for gpu_type in gpu_types:
        gpu = GPU_TYPES[gpu_type]
        terms.append({"matchExpressions": [
            {"key": POOL_LABEL, "operator": "In", "values": [GPU_NODE_SELECTOR[POOL_LABEL]]},
            {"key": "karpenter.k8s.aws/instance-gpu-name", "operator": "In", "values": [gpu.label]},
            {"key": "karpenter.k8s.aws/instance-gpu-memory", "operator": "Gt", "values": [str(gpu.memory_mib - 1)]},
            {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": [str(gpus - 1)]},
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(capacity_types)},
        ]})
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


# Karpenter's CPU pool, x86_64 nodes only: for images built for amd64 alone, or whose arm64 build is unconfirmed.
CPU_POOL_AMD64_AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [
        {"key": POOL_LABEL, "operator": "In", "values": [CPU_NODE_LABELS[POOL_LABEL]]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
    ]}]}}}
