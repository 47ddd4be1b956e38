"""Where the plan's pods may run, by the scheduler's own rules: the nodes the plan makes (the core node group, each
Karpenter NodePool once per architecture it allows), the pods it makes (its own pod templates, and what its Helm
releases render with the real charts, the Prometheus operator's Prometheus and Alertmanager pods included), and
whether a pod may land on a node (node selector, required node affinity, taints and tolerations).

A support library for tests/test_lean.py, not a test module. "May land" is generous where the plan cannot know a
label's value (an instance type, a zone): such a label is taken as present with any value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from planning import versions
from planning.instances import ARCHES
from tests import conformance, helm_render
from tools.mockrun import Plan, Resource

POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
OPERATOR_PODS = {"Prometheus", "Alertmanager"}  # the operator makes a StatefulSet of each
EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
# Labels every node has whose value the plan cannot know: present, any value.
WELL_KNOWN = ("kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
              "node.kubernetes.io/instance-type")
KARPENTER_LABEL_PREFIXES = ("karpenter.k8s.aws/",)
ANY = None  # a label's value set when any value is possible


@dataclass(frozen=True)
class Node:
    """A kind of node the plan makes: its labels (a set of possible values, or ANY) and its taints."""

    pool: str  # "core" (the managed node group) or the NodePool's name
    arch: str
    labels: dict[str, frozenset[str] | None]
    taints: tuple[dict[str, str], ...] = ()
    karpenter: bool = False

    def has(self, key: str) -> bool:
        return key in self.labels or (self.karpenter and key.startswith(KARPENTER_LABEL_PREFIXES))

    def values(self, key: str) -> frozenset[str] | None:
        return self.labels.get(key, ANY)


@dataclass
class Pod:
    """A pod template: who makes it, and its spec (nodeSelector, affinity, tolerations, containers)."""

    source: str  # the plan resource (or Helm release) that makes it
    kind: str
    name: str
    spec: dict[str, Any]
    replicas: int | None  # None: a DaemonSet
    images: list[str] = field(default_factory=list)

    def containers(self) -> list[dict[str, Any]]:
        return list(self.spec.get("containers") or [])

    def requests(self) -> tuple[int, int]:
        """(CPU millicores, memory MiB) the scheduler reserves: the containers' requests together."""
        cpu = mem = 0
        for c in self.containers():
            req = (c.get("resources") or {}).get("requests") or {}
            cpu += cpu_m(req.get("cpu", "0"))
            mem += memory_mib(req.get("memory", "0"))
        return cpu, mem


def cpu_m(quantity: Any) -> int:
    text = str(quantity)
    return int(text[:-1]) if text.endswith("m") else round(float(text) * 1000)


def memory_mib(quantity: Any) -> int:
    text = str(quantity)
    for suffix, factor in (("Gi", 1024), ("Mi", 1), ("Ki", 1 / 1024)):
        if text.endswith(suffix):
            return round(float(text[:-len(suffix)]) * factor)
    return round(float(text) / (1024 * 1024))


def image_key(image: str) -> str:
    """An image as planning/versions.py IMAGE_ARCHES records it: without a digest."""
    return image.split("@", 1)[0]


# ---------------------------------------------------------------------------------------------------- nodes


def nodes(plan: Plan) -> list[Node]:
    """Every kind of node the plan can bring up."""
    ami_arch = {ami: arch for arch, ami in versions.CORE_AMI_TYPES.items()}
    found = []
    for ng in plan.of_type("aws:eks/nodeGroup:NodeGroup"):
        i = ng.inputs
        arch = ami_arch[i["amiType"]]
        labels: dict[str, frozenset[str] | None] = {k: frozenset([v]) for k, v in (i.get("labels") or {}).items()}
        labels.update({"kubernetes.io/os": frozenset(["linux"]), "kubernetes.io/arch": frozenset([arch]),
                       "eks.amazonaws.com/nodegroup": frozenset([i["nodeGroupName"]]),
                       "eks.amazonaws.com/capacityType": frozenset([i.get("capacityType", "ON_DEMAND")])})
        labels.update({k: ANY for k in WELL_KNOWN})
        taints = tuple({"key": t["key"], "value": t.get("value", ""), "effect": EFFECTS[t["effect"]]}
                       for t in i.get("taints") or [])
        found.append(Node(pool="core", arch=arch, labels=labels, taints=taints))
    for pool in plan.of_type("kubernetes:karpenter.sh/v1:NodePool"):
        template = pool.inputs["spec"]["template"]
        name = pool.inputs["metadata"]["name"]
        labels = {k: frozenset([v]) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()}
        labels.update({"karpenter.sh/nodepool": frozenset([name]), "kubernetes.io/os": frozenset(["linux"])})
        labels.update({k: ANY for k in WELL_KNOWN})
        arches: tuple[str, ...] = ARCHES
        for req in template["spec"].get("requirements") or []:
            if req["key"] == "kubernetes.io/arch":
                arches = tuple(a for a in ARCHES if a in req["values"])
            elif req["operator"] == "In":
                labels[req["key"]] = frozenset(req["values"])
            else:
                labels[req["key"]] = ANY
        taints = tuple(template["spec"].get("taints") or [])
        for arch in arches:
            found.append(Node(pool=name, arch=arch, labels={**labels, "kubernetes.io/arch": frozenset([arch])},
                              taints=taints, karpenter=True))
    return found


# ----------------------------------------------------------------------------------------------------- pods


def pods_of_plan(plan: Plan) -> list[Pod]:
    found = []
    for r in plan.resources:
        kind = r.type.rsplit(":", 1)[-1] if r.type.startswith("kubernetes:") else ""
        if kind in POD_TEMPLATE_KINDS:
            spec = r.inputs.get("spec") or {}
            found.append(_pod(r.name, kind, r.inputs["metadata"]["name"], spec))
    return found


def _pod(source: str, kind: str, name: str, spec: dict[str, Any]) -> Pod:
    pod = (spec.get("template") or {}).get("spec") or {}
    replicas = None if kind == "DaemonSet" else spec.get("replicas", 1)
    images = [c["image"] for c in (pod.get("containers") or []) + (pod.get("initContainers") or [])]
    return Pod(source, kind, name, pod, replicas, images)


def pods_of_manifests(source: str, manifests: list[Any]) -> list[Pod]:
    """The pods a release's rendered manifests make; the operator's Prometheus and Alertmanager pods get the
    config-reloader sidecar the operator adds, with the image and requests its Deployment's flags give."""
    found, operator_args = [], []
    for m in manifests:
        if not isinstance(m, dict):
            continue
        if m.get("kind") in POD_TEMPLATE_KINDS:
            found.append(_pod(source, m["kind"], m["metadata"]["name"], m.get("spec") or {}))
            for c in ((m.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
                operator_args += [a for a in c.get("args") or [] if a.startswith("--config-reloader-")
                                  or a.startswith("--prometheus-config-reloader=")]
    flags = dict(a.lstrip("-").split("=", 1) for a in operator_args)
    for m in manifests:
        if isinstance(m, dict) and m.get("kind") in OPERATOR_PODS:
            spec = m.get("spec") or {}
            containers = [{"name": m["kind"].lower(), "image": spec["image"], "resources": spec.get("resources") or {}}]
            if "prometheus-config-reloader" in flags:
                containers.append({"name": "config-reloader", "image": flags["prometheus-config-reloader"],
                                   "resources": {"requests": {
                                       "cpu": flags.get("config-reloader-cpu-request", "0"),
                                       "memory": flags.get("config-reloader-memory-request", "0")}}})
            containers += spec.get("containers") or []
            pod = {"nodeSelector": spec.get("nodeSelector") or {}, "affinity": spec.get("affinity") or {},
                   "tolerations": spec.get("tolerations") or [], "containers": containers}
            found.append(Pod(source, m["kind"], m["metadata"]["name"], pod, spec.get("replicas", 1),
                             [c["image"] for c in containers]))
    return found


def render_releases(plan: Plan, helm: helm_render.Helm) -> tuple[list[Pod], dict[str, list[str]]]:
    """The pods every Helm release of the plan renders with its pinned chart, and per chart the sub-charts
    ../shared/charts lacks (switched off, so not rendered). A chart folder that is absent raises LookupError."""
    found: list[Pod] = []
    missing_by_chart: dict[str, list[str]] = {}
    version = plan.config.get("nim-on-eks:eks_version") or versions.DEFAULT_EKS_VERSION
    for release, chart, chart_version in conformance.helm_releases(plan):
        folder = helm_render.chart_folder(chart, chart_version)
        if folder is None:
            raise LookupError(f"no folder for chart {chart} {chart_version} in {helm_render.CHARTS}")
        renderable, missing = helm_render.without_missing_dependencies(folder)
        conditions = helm_render.dependency_conditions(folder)
        values, _, secrets = helm_render.release_values(release)
        values = helm_render.switched_off(values, [conditions[m] for m in missing if conditions.get(m)])
        manifests = helm_render.render(helm, renderable, name=release.inputs["name"],
                                       namespace=release.inputs["namespace"], values=values, kube_version=version,
                                       include_crds=False, cache=None if secrets else helm_render.CACHE)
        found += pods_of_manifests(release.inputs["name"], manifests)
        missing_by_chart[chart] = missing
    return found, missing_by_chart


# -------------------------------------------------------------------------------------------- the scheduler


def tolerates(pod: Pod, taint: dict[str, str]) -> bool:
    for t in pod.spec.get("tolerations") or []:
        if t.get("effect") not in (None, "", taint.get("effect")):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, "", taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expression(node: Node, e: dict[str, Any]) -> bool:
    key, op, values = e["key"], e["operator"], set(e.get("values") or [])
    present, possible = node.has(key), node.values(key)
    if op == "In":
        return present and (possible is ANY or bool(possible & values))
    if op == "NotIn":
        return not present or possible is ANY or bool(possible - values)
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        return present and (possible is ANY or any(
            re.fullmatch(r"-?\d+", v) and (int(v) > int(e["values"][0]) if op == "Gt" else int(v) < int(e["values"][0]))
            for v in possible))
    raise ValueError(f"unknown operator {op}")


def may_land(pod: Pod, node: Node) -> bool:
    """Whether the scheduler may place the pod on a node of this kind."""
    for key, value in (pod.spec.get("nodeSelector") or {}).items():
        if not node.has(key) or (node.values(key) is not ANY and value not in node.values(key)):
            return False
    required = (((pod.spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
    if required and not any(all(_expression(node, e) for e in term.get("matchExpressions") or [])
                            for term in required):
        return False
    return all(tolerates(pod, t) for t in node.taints if t.get("effect") in ("NoSchedule", "NoExecute"))


def landing(pods: list[Pod], node_kinds: list[Node]) -> dict[int, list[Node]]:
    """id(pod) -> the node kinds it may land on."""
    return {id(p): [n for n in node_kinds if may_land(p, n)] for p in pods}
