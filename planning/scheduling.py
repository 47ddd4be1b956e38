"""Where pods may run: the node-pool label every node carries, the core and GPU taints and their tolerations, and the
node selectors and affinities built from them. Plain data; the components put it on nodes (cluster: the core node
group; karpenter: the GPU and CPU NodePools) and on pods (every workload, chart and EKS add-on).

What runs where (README, "What runs where"):
- core node group, tainted CORE_TAINT: only what must run before Karpenter can launch a node, or while it
  terminates them on destroy: Karpenter, CoreDNS, the EBS and EFS CSI controllers, and node DaemonSets. They
  tolerate the taint and select the core label; nothing else tolerates it, so nothing else lands there.
- Karpenter's `cpu` NodePool (untainted): every other pod that needs no GPU, pinned there by CPU_POOL_AFFINITY
  (monitoring, Open WebUI, AIPerf, autoscaling).
- Karpenter's `gpu` NodePool, tainted GPU_TAINT: the models and the GPU DaemonSets.

Why a taint on the core nodes rather than node affinity on everything else: a taint keeps off every pod that does
not opt in, including the ones a chart or a later change adds without thinking of placement; affinity would have
to be remembered on each. The key is the one these pods already tolerate: CoreDNS's manifest (coredns/deployment
kubernetes/coredns.yaml.sed @ 000c366e; EKS user guide automode/set-builtin-node-pools.adoc: "Many EKS addons, such as
CoreDNS, tolerate this taint"), the EBS and EFS CSI charts' controllers (kubernetes-sigs/aws-ebs-csi-driver and
aws-efs-csi-driver charts' values.yaml, controller.tolerations) and Karpenter's chart (values.yaml, tolerations).
The add-ons' defaults are restated in their configuration (ADDON_PLACEMENT), so the core placement does not rest on
them. Node DaemonSets tolerate every taint: aws-node (aws/amazon-vpc-cni-k8s config/master/aws-k8s-cni.yaml
@ 00554250), eks-pod-identity-agent (its chart, @ 00bc0581), the CSI node plugins (tolerateAllTaints; `operator:
Exists`), node-exporter (NoSchedule Exists, prometheus-node-exporter 4.56.1). kube-proxy: EKS's DaemonSet is taken
to tolerate every taint, as kubeadm's does (kubernetes/kubernetes#62390); not read from EKS, but it already runs on
the GPU nodes' taint, where the models' DNS lookups go through its rules.

Where each other fact comes from:
- `nim-on-eks/node-pool` (POOL_LABEL) is this project's own label: `core` on the managed node group, `gpu` and
  `cpu` on the nodes of Karpenter's two NodePools.
- `nvidia.com/gpu.present=true` on GPU nodes: the NVIDIA device plugin chart's default node affinity accepts a
  node with it (nvidia-device-plugin 0.20.0 values.yaml, "allow a GPU deployment to be forced"); without GPU
  feature discovery nothing else sets it.
- The `nvidia.com/gpu:NoSchedule` taint on GPU nodes, so only pods that tolerate it (NIM, the device plugin, the
  DCGM exporter) land there; the device plugin chart tolerates the same taint by default.
- The EKS add-ons' configuration keys (nodeSelector, tolerations; `controller.` for the CSI drivers): in their
  configuration schemas (`aws eks describe-addon-configuration`), as quoted in aws/containers-roadmap#1930 and
  aws-ia/terraform-aws-eks-blueprints-addons#157 (CoreDNS), #1706 (EBS tolerations) and #2582 (EBS and EFS
  controller nodeSelector), kubernetes-sigs/aws-efs-csi-driver#1181 (EFS tolerations).
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

# The core node group's taint (the EKS API's form: NO_SCHEDULE) and the toleration of the pods that belong there.
CORE_TAINT = {"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"}
CORE_TOLERATION = {"key": "CriticalAddonsOnly", "operator": "Exists"}

# Every pod that needs no GPU and is not one of the core's: Karpenter's CPU nodes, and only those.
CPU_POOL_AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": POOL_LABEL, "operator": "In", "values": [CPU_NODE_LABELS[POOL_LABEL]]}]}]}}}
# A pod annotation that blocks Karpenter's voluntary disruption (consolidation, drift) of the node while the pod runs
# (Karpenter v1 reference, Well-Known Annotations: karpenter.sh/do-not-disrupt): for work a restart would lose.
DO_NOT_DISRUPT = {"karpenter.sh/do-not-disrupt": "true"}
# A pod whose image is built for x86-64 only (planning/versions.py IMAGE_ARCHES) on a CPU pool that allows Graviton.
AMD64_NODE_SELECTOR = {"kubernetes.io/arch": "amd64"}

# The EKS add-ons' pods that belong on the core nodes, pinned there through each add-on's configuration values:
# CoreDNS (every pod's DNS, Karpenter's calls to AWS included) and the CSI controllers (a stack without any CPU
# workload needs no CPU node, and on destroy the drivers delete the volumes after the CPU NodePool is gone).
_ON_CORE = {"nodeSelector": CORE_NODE_LABEL, "tolerations": [CORE_TOLERATION]}
ADDON_PLACEMENT: dict[str, dict[str, Any]] = {
    "coredns": _ON_CORE,
    "aws-ebs-csi-driver": {"controller": _ON_CORE},
    "aws-efs-csi-driver": {"controller": _ON_CORE},
}


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
