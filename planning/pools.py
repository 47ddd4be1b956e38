"""The always-on footprint, decided before anything is created: the core node group (instance type, count,
architecture, AMI type, its name in EKS) with the arithmetic that says it holds what must run there, and
Karpenter's CPU NodePool (families, architectures, capacity types, limit, consolidation) with the nodes that hold
its pods (size_cpu_pool). Plain data and functions of the config values; components/cluster.py and
components/karpenter.py build from them, config validation refuses a core type that cannot hold its pods and CPU
families none of whose types holds a pool pod, and the cost estimate reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from planning import versions
from planning.instances import InstanceData, InstanceType, load_instances
from planning.workloads import KARPENTER_CONTROLLER, PoolWorkload

# ------------------------------------------------------------------------------------------ core node group

# The core node group as every stack had it before issue 13: m5.xlarge, named `core-node-group` in EKS. A stack
# that keeps that type keeps that group untouched; any other type is a group of its own (core_node_group_name).
LEGACY_CORE = ("m5.xlarge", "core-node-group")


def core_node_group_name(instance_type: str) -> str:
    """The core node group's name in EKS, which changes with its instance type.

    EKS cannot change the instance types or the AMI type of a managed node group (the EKS API has no such update;
    pulumi-aws, like the Terraform provider it wraps, marks both as replacing the group: hashicorp/
    terraform-provider-aws internal/service/eks/node_group.go, `ForceNew`; EKS user guide nodes/al2023.adoc: a new
    AMI type is a new node group, blue/green). A new type therefore makes a new group: with a name of its own,
    Pulumi creates it first and deletes the old one after, whose nodes EKS drains onto the new ones. With the same
    name the create would fail (the name is taken) and the stack would be stuck.
    """
    if instance_type == LEGACY_CORE[0]:
        return LEGACY_CORE[1]
    return f"core-{instance_type.replace('.', '-')}"


@dataclass(frozen=True)
class CoreGroup:
    """The core managed node group: what the cost estimate and the cluster component build from."""

    instance: InstanceType
    count: int  # desired and minimum
    max: int
    disk_gb: int

    @property
    def instance_type(self) -> str:
        return self.instance.name

    @property
    def arch(self) -> str:
        return self.instance.arch

    @property
    def ami_type(self) -> str:
        return versions.CORE_AMI_TYPES[self.arch]

    @property
    def node_group_name(self) -> str:
        return core_node_group_name(self.instance.name)


def core_group(instance_type: str, count: int, max_count: int, disk_gb: int,
               data: InstanceData | None = None) -> CoreGroup:
    """The core node group of these config values (core_instance_type is one of data's CPU types: validated)."""
    return CoreGroup((data or load_instances()).types[instance_type], count, max_count, disk_gb)


@dataclass(frozen=True)
class CorePod:
    """A pod that runs on the core nodes: its requests (all containers), and how many replicas (None: a DaemonSet,
    one on every node)."""

    name: str
    cpu_m: int
    memory_mib: int
    replicas: int | None
    source: str
    when: str | None = None  # a StackConfig switch it depends on


# What lands on a core node, with its requests. Where a figure is not published it says ASSUMED.
CORE_PODS: tuple[CorePod, ...] = (
    CorePod("karpenter", KARPENTER_CONTROLLER.cpu_m, KARPENTER_CONTROLLER.memory_mib, 2,
            "components/karpenter.py values (planning/workloads.py); required anti-affinity: one per node"),
    CorePod("coredns", 100, 70, 2, "the upstream CoreDNS manifest the EKS add-on keeps (coredns/deployment "
                                   "kubernetes/coredns.yaml.sed @ 000c366e); 2 replicas, the add-on's default"),
    CorePod("ebs-csi-controller", 70, 280, 2, "aws-ebs-csi-driver @ 006340ee charts templates/controller.yaml: the "
                                              "plugin and its 6 sidecars each take controller.resources, 10m/40Mi"),
    CorePod("efs-csi-controller", 600, 384, 2, "EKS add-on default 200m for each of its 3 containers "
                                               "(aws/containers-roadmap#2758, 2026-01); memory ASSUMED 128 MiB each"),
    CorePod("aws-node", 50, 0, None, "VPC CNI manifest config/master/aws-k8s-cni.yaml (v1.23.1): aws-node 25m, and "
                                     "aws-eks-nodeagent 25m, the network policy agent components/cluster.py switches on"),
    CorePod("kube-proxy", 100, 0, None, "ASSUMED: upstream kube-proxy's 100m"),
    CorePod("eks-pod-identity-agent", 0, 0, None, "its chart's values.yaml, resources {} @ 00bc0581"),
    CorePod("ebs-csi-node", 30, 120, None, "aws-ebs-csi-driver @ 006340ee templates/_node.tpl: the plugin and its 2 "
                                           "sidecars each take node.resources, 10m/40Mi"),
    CorePod("efs-csi-node", 0, 0, None, "aws-efs-csi-driver chart values.yaml node.resources {}; not configurable "
                                        "in the add-on (aws-efs-csi-driver#1628)"),
    CorePod("node-exporter", 0, 0, None, "prometheus-node-exporter 4.56.1 values.yaml resources {}",
            when="monitoring"),
)


@dataclass(frozen=True)
class CoreLoad:
    """What the core pods ask of one node (one replica of each Deployment, every DaemonSet) and of all `count`."""

    one_node: tuple[int, int, int]  # CPU millicores, memory MiB, pods
    all_nodes: tuple[int, int, int]


def core_load(count: int, switches: dict[str, bool]) -> CoreLoad:
    pods = [p for p in CORE_PODS if p.when is None or switches[p.when]]
    deployments = [p for p in pods if p.replicas is not None]
    daemonsets = [p for p in pods if p.replicas is None]
    one = (sum(p.cpu_m for p in pods), sum(p.memory_mib for p in pods), len(pods))
    every = (sum(p.cpu_m * p.replicas for p in deployments) + count * sum(p.cpu_m for p in daemonsets),
             sum(p.memory_mib * p.replicas for p in deployments) + count * sum(p.memory_mib for p in daemonsets),
             sum(p.replicas for p in deployments) + count * len(daemonsets))
    return CoreLoad(one, every)


def core_shortfall(instance: InstanceType, count: int, switches: dict[str, bool]) -> list[str]:
    """Why `count` nodes of `instance` cannot hold the core pods (empty: they can).

    Two conditions: one node holds one replica of every core Deployment and every DaemonSet, so the cluster keeps
    working on a single core node (while EKS replaces the other, or after losing it); and all nodes together hold
    every replica. On a t4g.medium (1930m, 3187 MiB, 17 pods allocatable) with monitoring: one node 1345m,
    1558 MiB, 10 pods; two nodes 2690m of 3860m, 3116 MiB of 6374 MiB, 20 pods of 34. A t4g.small (1359 MiB)
    fails the first; an m7g.medium (940m, 8 pods) fails both.
    """
    load = core_load(count, switches)
    have = (instance.alloc_cpu_m, instance.alloc_memory_mib, instance.alloc_pods)
    found = []
    for what, (cpu, mem, pods), nodes in (("one node", load.one_node, 1), (f"{count} nodes", load.all_nodes, count)):
        short = [f"{label} {need}{unit} > {nodes * got}{unit}" for label, need, got, unit in (
            ("CPU", cpu, have[0], "m"), ("memory", mem, have[1], " MiB"), ("pods", pods, have[2], ""))
            if need > nodes * got]
        if short:
            found.append(f"{what}: {', '.join(short)}")
    return found


# ------------------------------------------------------------------------------------------- CPU NodePool

# After a pod starts or ends on a CPU node, Karpenter waits this long before it repacks or removes the node: long
# enough that the pods a `pulumi up` starts one after another (monitoring, Open WebUI, jobs) settle first, and a
# restart of Prometheus (its volume moves with it) is not traded for pennies every minute; short enough that a node
# a finished job leaves empty is gone within minutes.
CPU_CONSOLIDATE_AFTER = "10m"
# The CPU pool's EC2NodeClass root volume: images and logs. The largest that can share a node: a NIM image for the
# pre-cache Job (~12 GB compressed, planning/coldstart.py, unpacked about twice that, as NGC's pytorch image: 9.5 GB
# -> 20.4 GB, aws-ia ml-container-cache), AIPerf's (a slim Python image, ~1.2 GB of venv on an emptyDir, which is on
# this disk too) and Open WebUI's; the kubelet evicts pods when the disk fills (85% by default), so 50 GiB could not
# hold the NIM image beside the rest. gp3 is $0.08/GB-
# month: 100 GiB is ~$0.011/h a node.
CPU_ROOT_VOLUME_GB = 100


@dataclass(frozen=True)
class CpuPool:
    """Karpenter's CPU NodePool."""

    families: tuple[str, ...]
    arches: tuple[str, ...]  # of the families, in ARCHES order
    capacity_types: tuple[str, ...]
    limit_vcpu: int
    consolidate_after: str = CPU_CONSOLIDATE_AFTER


def cpu_pool(families: tuple[str, ...], capacity_types: tuple[str, ...], limit_vcpu: int,
             data: InstanceData | None = None) -> CpuPool:
    arch = (data or load_instances()).family_arch()
    found = {arch[f] for f in families}
    return CpuPool(tuple(families), tuple(a for a in ("arm64", "amd64") if a in found), tuple(capacity_types),
                   limit_vcpu)


def unplaceable(workloads: list[PoolWorkload], pool_arches: tuple[str, ...]) -> list[PoolWorkload]:
    """The workloads none of whose architectures the CPU pool's families offer."""
    return [w for w in workloads if not set(w.arches) & set(pool_arches)]


# ------------------------------------------------------------------------------- sizing the CPU NodePool

class CpuPoolFitError(ValueError):
    """A CPU-pool pod that no allowed instance type can hold (with the node DaemonSets); the message says which."""


@dataclass(frozen=True)
class PodLoad:
    """Requests added up: CPU millicores, memory MiB, pods."""

    cpu_m: int
    memory_mib: int
    pods: int


def node_daemonsets(switches: dict[str, bool]) -> PodLoad:
    """What the DaemonSets take on every node (CORE_PODS without a replica count; node-exporter with monitoring):
    the same figures the core's arithmetic uses, since the same DaemonSets run on every CPU node."""
    pods = [p for p in CORE_PODS if p.replicas is None and (p.when is None or switches[p.when])]
    return PodLoad(sum(p.cpu_m for p in pods), sum(p.memory_mib for p in pods), len(pods))


def pool_load(workloads: list[PoolWorkload]) -> PodLoad:
    """What the workloads request together, every replica counted."""
    return PodLoad(sum(w.cpu_m * w.replicas for w in workloads), sum(w.memory_mib * w.replicas for w in workloads),
                   sum(w.replicas for w in workloads))


@dataclass(frozen=True)
class PoolNodes:
    """`count` nodes of one instance type."""

    instance_type: str
    arch: str
    count: int
    pods: tuple[str, ...]  # the workloads placed on them (a name per replica)


def _room(t: InstanceType, daemonsets: PodLoad) -> tuple[int, int, int]:
    return t.alloc_cpu_m - daemonsets.cpu_m, t.alloc_memory_mib - daemonsets.memory_mib, t.alloc_pods - daemonsets.pods


def _fits(room: list[int], w: PoolWorkload) -> bool:
    return w.cpu_m <= room[0] and w.memory_mib <= room[1] and room[2] >= 1


def _pack(pods: list[PoolWorkload], first: InstanceType, then: InstanceType,
          daemonsets: PodLoad) -> list[tuple[InstanceType, list[int], list[str]]] | None:
    """First-fit decreasing: the pods that cannot run on `then`'s architecture onto `first` nodes, then the rest onto
    those nodes' room or onto `then` nodes. None when a pod fits neither."""
    nodes: list[tuple[InstanceType, list[int], list[str]]] = []
    pinned = [p for p in pods if then.arch not in p.arches]
    rest = [p for p in pods if then.arch in p.arches]
    for group, kind in ((pinned, first), (rest, then)):
        for pod in group:
            home = next((n for n in nodes if n[0].arch in pod.arches and _fits(n[1], pod)), None)
            if home is None:
                if kind.arch not in pod.arches:
                    return None
                home = (kind, list(_room(kind, daemonsets)), [])
                if not _fits(home[1], pod):
                    return None
                nodes.append(home)
            home[1][0] -= pod.cpu_m
            home[1][1] -= pod.memory_mib
            home[1][2] -= 1
            home[2].append(pod.name)
    return nodes


def size_cpu_pool(workloads: list[PoolWorkload], types: list[InstanceType], daemonsets: PodLoad,
                  node_price: Callable[[InstanceType], float]) -> tuple[PoolNodes, ...]:
    """The cheapest nodes (by `node_price`, per node and hour) of the allowed `types` that hold every replica of
    `workloads` beside the node DaemonSets, as Karpenter would launch them for the pods at once.

    For every instance type the fewest nodes first-fit decreasing (by CPU, then memory) finds, checking CPU, memory
    and pods, each pod on a type of an architecture its images run on; a pod whose images lack that type's
    architecture (AIPerf is amd64 only) goes on nodes of a second type of the other architecture, whose room the
    rest may share. The cheapest total wins (then fewer nodes, then names). No pod: no node. Raises CpuPoolFitError
    naming a pod no allowed type holds.
    """
    pods = sorted((w for w in workloads for _ in range(w.replicas)), key=lambda w: (-w.cpu_m, -w.memory_mib, w.name))
    if not pods:
        return ()
    for pod in pods:
        if not any(t.arch in pod.arches and _fits(list(_room(t, daemonsets)), pod) for t in types):
            usable = [t for t in types if t.arch in pod.arches]
            biggest = max(usable, key=lambda t: (t.alloc_cpu_m, t.alloc_memory_mib, t.name), default=None)
            largest = (f"the largest, {biggest.name}, allocates {biggest.alloc_cpu_m}m, {biggest.alloc_memory_mib} MiB"
                       if biggest else f"none is {'/'.join(pod.arches)}")
            raise CpuPoolFitError(
                f"{pod.name} ({pod.cpu_m}m CPU, {pod.memory_mib} MiB, {'/'.join(pod.arches)}) fits no allowed "
                f"instance type beside the node DaemonSets ({daemonsets.cpu_m}m, {daemonsets.memory_mib} MiB, "
                f"{daemonsets.pods} pods): {largest}")
    best = None
    for first in types:
        for then in types:
            if first is not then and first.arch == then.arch:
                continue  # a second type only for the other architecture
            nodes = _pack(pods, first, then, daemonsets)
            if nodes is None:
                continue
            rank = (round(sum(node_price(n[0]) for n in nodes), 6), len(nodes), first.name, then.name)
            if best is None or rank < best[0]:
                best = (rank, nodes)
    if best is None:  # every pod fits some type alone, but not all of them on one or two types
        raise CpuPoolFitError("no allowed instance types hold the CPU pool's pods together")
    grouped: dict[str, list] = {}
    for t, _, placed in best[1]:
        grouped.setdefault(t.name, [t, 0, []])
        grouped[t.name][1] += 1
        grouped[t.name][2] += placed
    return tuple(PoolNodes(t.name, t.arch, count, tuple(placed)) for t, count, placed in grouped.values())
