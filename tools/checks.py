"""System-level checks over the offline plan: what no single object's schema can show.

1. References: an input that names something the stack creates (the cluster, a queue, a role, a security group,
   a namespace, a StorageClass, a Secret, a PVC, ...) must reach the resource that creates it through the
   dependency graph, or `pulumi up` may create it first (and `pulumi destroy` delete it last) and fail.
2. Reachability: from the security groups and rules in the plan (pulumi-eks's and EKS's own included, see
   tools/opaque.py), the flows a cluster needs are allowed: nodes -> API server, control plane -> kubelet and
   webhooks, pods -> CoreDNS, nodes -> EFS, Prometheus and clients (the interceptor too) -> NIM, KEDA -> the
   HTTP add-on's scaler and Prometheus.
3. Destroy: the order `pulumi destroy` deletes in, with the asynchronous deletions controllers do after an object
   is gone (Karpenter terminating nodes, CSI drivers deleting volumes, the AWS Load Balancer Controller deleting the
   NLBs of Services made from a Gateway), each of which needs its
   controller alive and some resource whose deletion waits for it; KEDA's scalers: each goes before what it
   scales, and before the controllers that remove its finalizer; and every workload whose pods may run on a
   Karpenter NodePool's nodes is deleted before that NodePool.

Each check returns a list of problems (empty: it holds); tools/plan.py prints them and fails the plan on any.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterator

from tools import opaque
from tools.mockrun import Plan, Resource

# ------------------------------------------------------------------------------------------ 1. references

# Keys whose values describe rather than name: tags and labels may carry the cluster name without needing it.
DESCRIPTIVE_KEYS = {"tags", "tagsAll", "defaultTags", "labels", "annotations", "description", "matchLabels",
                    "selector", "nodeSelector", "podLabels", "commonLabels", "additionalLabels"}
# Kubernetes fields that name another object: field -> kind of the object named (None: the namespace field).
K8S_REFERENCE_FIELDS = {
    "namespace": "Namespace",
    "storageClassName": "StorageClass",
    "claimName": "PersistentVolumeClaim",
    "secretName": "Secret",
    "existingSecret": "Secret",
    "serviceAccountName": "ServiceAccount",
}
# `name` under these keys names an object of that kind.
K8S_NAME_PARENTS = {"secretKeyRef": "Secret", "secretRef": "Secret", "imagePullSecrets": "Secret",
                    "configMapKeyRef": "ConfigMap", "configMapRef": "ConfigMap", "configMap": "ConfigMap"}
CLUSTER_SCOPED = {"Namespace", "StorageClass"}


def _walk(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) for every string below `value`, skipping descriptive keys."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in DESCRIPTIVE_KEYS:
                continue
            yield from _walk(v, (*path, str(k)))
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, (*path, "[]"))
    elif isinstance(value, str):
        yield path, value


def _aws_identifiers(plan: Plan) -> dict[str, Resource]:
    """Every id, ARN, URL and name an AWS resource of the stack answers with -> that resource."""
    found: dict[str, Resource] = {}
    for r in plan.resources:
        if not r.custom or not r.type.startswith("aws:"):
            continue
        values = [r.id, *(r.outputs.get(k) for k in ("arn", "url", "name"))]
        for v in values:
            # short generic strings (a volume type, "true") are not names of anything
            if isinstance(v, str) and len(v) >= 8 and v not in found:
                found[v] = r
    return found


def _k8s_kind(r: Resource) -> str | None:
    if r.type.startswith("kubernetes:") and r.type.count(":") == 2:
        return r.type.rsplit(":", 1)[-1]
    return None


def _k8s_objects(plan: Plan) -> dict[tuple[str, str, str], Resource]:
    """(kind, namespace or "", name) -> the resource creating that Kubernetes object."""
    found = {}
    for r in plan.resources:
        kind = _k8s_kind(r)
        meta = r.inputs.get("metadata") if kind else None
        if kind and isinstance(meta, dict) and meta.get("name"):
            ns = "" if kind in CLUSTER_SCOPED else meta.get("namespace", "default")
            found[(kind, ns, meta["name"])] = r
    return found


def _k8s_references(r: Resource) -> Iterator[tuple[str, str, str, str]]:
    """(path, kind, namespace, name) of every object a Kubernetes resource or Helm release names."""
    if r.type == "kubernetes:helm.sh/v3:Release":
        ns = r.inputs.get("namespace", "default")
        yield "namespace", "Namespace", "", ns
        body = r.inputs.get("values") or {}
    elif _k8s_kind(r):
        meta = r.inputs.get("metadata") or {}
        ns = meta.get("namespace", "default")
        if "namespace" in meta:
            yield "metadata.namespace", "Namespace", "", ns
        body = {k: v for k, v in r.inputs.items() if k != "metadata"}
    else:
        return
    for path, value in _walk(body):
        key = path[-1] if path else ""
        parent = next((p for p in reversed(path[:-1]) if p != "[]"), "")
        kind = None
        if key in K8S_REFERENCE_FIELDS and key != "namespace":
            kind = K8S_REFERENCE_FIELDS[key]
        elif key == "name" and parent in K8S_NAME_PARENTS:
            kind = K8S_NAME_PARENTS[parent]
        if kind:
            yield ".".join(p for p in path if p != "[]"), kind, "" if kind in CLUSTER_SCOPED else ns, value


def _inside(plan: Plan, r: Resource, component: Resource) -> bool:
    parents = {x.urn: x.parent for x in plan.resources}
    urn = r.parent
    while urn:
        if urn == component.urn:
            return True
        urn = parents.get(urn, "")
    return False


def reference_problems(plan: Plan) -> list[str]:
    """Inputs naming a resource of the stack that the resource does not depend on."""
    aws_ids = _aws_identifiers(plan)
    k8s = _k8s_objects(plan)
    problems = []
    for r in plan.resources:
        if r.implied or r.type.startswith("pulumi:providers:"):
            continue  # what opaque components do inside is theirs; providers take a kubeconfig, not a name
        named: list[tuple[str, Resource, str]] = []
        skip = {"key", "value"} if r.type == "aws:ec2/tag:Tag" else set()  # a tag's text, not a reference
        for path, value in _walk(r.inputs):
            if path and path[0] in skip:
                continue
            creator = aws_ids.get(value)
            if creator is not None and creator is not r:
                named.append((".".join(path), creator, value))
        for path, kind, ns, name in _k8s_references(r):
            creator = k8s.get((kind, ns, name))
            if creator is not None and creator is not r:
                named.append((path, creator, f"{kind} {ns + '/' if ns else ''}{name}"))
        for path, creator, what in named:
            if _inside(plan, creator, r):
                continue  # a component naming what it creates inside itself
            if not plan.depends_on(r, creator):
                problems.append(f"{r.type} {r.name}: {path} names {what}, made by {creator.type} {creator.name}, "
                                "but does not depend on it (pass the creator's Output, or depend on it)")
    return problems


# ---------------------------------------------------------------------------------------- 2. reachability


@dataclass(frozen=True)
class Rule:
    direction: str  # ingress / egress
    protocol: str  # "-1" (all), "tcp", "udp"
    from_port: int
    to_port: int
    peers: frozenset[str] = frozenset()  # security group ids
    cidrs: tuple[str, ...] = ()

    def covers(self, protocol: str, port: int) -> bool:
        if self.protocol in ("-1", "all"):
            return True
        proto = {"6": "tcp", "17": "udp"}.get(self.protocol, self.protocol)
        return proto == protocol and self.from_port <= port <= self.to_port


@dataclass
class Endpoint:
    """Something with network interfaces: its security groups and the address ranges it lives in."""

    name: str
    groups: set[str]
    ranges: list[str] = field(default_factory=list)


def _rules(plan: Plan) -> dict[str, list[Rule]]:
    """Security group id -> its rules, from inline rules and rule resources."""
    rules: dict[str, list[Rule]] = {}

    def add(sg: str, direction: str, spec: dict[str, Any], self_: bool = False) -> None:
        peers = set(spec.get("securityGroups") or [])
        for key in ("sourceSecurityGroupId", "referencedSecurityGroupId"):
            if spec.get(key):
                peers.add(spec[key])
        if self_ or spec.get("self"):
            peers.add(sg)
        cidrs = tuple(spec.get("cidrBlocks") or ()) + ((spec["cidrIpv4"],) if spec.get("cidrIpv4") else ())
        protocol = str(spec.get("protocol") or spec.get("ipProtocol") or "-1")
        rules.setdefault(sg, []).append(Rule(direction, protocol, int(spec.get("fromPort") or 0),
                                             int(spec.get("toPort") or 0), frozenset(peers), cidrs))

    for r in plan.of_type("aws:ec2/securityGroup:SecurityGroup"):
        rules.setdefault(r.id, [])
        for direction in ("ingress", "egress"):
            for spec in r.inputs.get(direction) or []:
                add(r.id, direction, spec)
    for r in plan.of_type("aws:ec2/securityGroupRule:SecurityGroupRule"):
        add(r.inputs["securityGroupId"], r.inputs["type"], r.inputs)
    for kind, direction in (("Ingress", "ingress"), ("Egress", "egress")):
        for r in plan.of_type(f"aws:vpc/securityGroup{kind}Rule:SecurityGroup{kind}Rule"):
            add(r.inputs["securityGroupId"], direction, r.inputs)
    return rules


def _group_tags(plan: Plan) -> dict[str, dict[str, str]]:
    tags: dict[str, dict[str, str]] = {}
    for r in plan.of_type("aws:ec2/securityGroup:SecurityGroup"):
        tags.setdefault(r.id, {}).update(r.inputs.get("tags") or {})
    for t in plan.of_type("aws:ec2/tag:Tag"):
        tags.setdefault(t.inputs["resourceId"], {})[t.inputs["key"]] = t.inputs["value"]
    return tags


def endpoints(plan: Plan) -> tuple[Endpoint | None, list[Endpoint], list[Endpoint], list[str]]:
    """(control plane, node groups, EFS mount targets, problems finding them)."""
    problems: list[str] = []
    private = [s.inputs["cidrBlock"] for s in plan.of_type("aws:ec2/subnet:Subnet")
               if s.inputs.get("cidrBlock") and not s.inputs.get("mapPublicIpOnLaunch")
               and "kubernetes.io/role/internal-elb" in (s.inputs.get("tags") or {})]
    clusters = plan.of_type("aws:eks/cluster:Cluster")
    control = None
    eks_sg = None
    if clusters:
        vpc = clusters[0].inputs["vpcConfig"]
        eks_sg = vpc["clusterSecurityGroupId"]
        control = Endpoint("the control plane (API server ENIs)", {eks_sg, *vpc.get("securityGroupIds", [])},
                           private)
    nodes: list[Endpoint] = []
    templates = {r.id: r for r in plan.of_type("aws:ec2/launchTemplate:LaunchTemplate")}
    for ng in plan.of_type("aws:eks/nodeGroup:NodeGroup"):
        lt = templates.get(((ng.inputs.get("launchTemplate") or {}).get("id")) or "")
        groups = set((lt.inputs.get("vpcSecurityGroupIds") or []) if lt else [])
        # A managed node group whose launch template names no security group gets the EKS-created one.
        nodes.append(Endpoint(f"managed node group {ng.inputs.get('nodeGroupName', ng.name)}",
                              groups or ({eks_sg} if eks_sg else set()), private))
    tags = _group_tags(plan)
    for nc in plan.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"):
        groups = set()
        for term in nc.inputs["spec"].get("securityGroupSelectorTerms") or []:
            if "id" in term:
                groups.add(term["id"])
            want = term.get("tags") or {}
            if want:
                groups |= {sg for sg, have in tags.items()
                           if all(have.get(k) == v or (v == "*" and k in have) for k, v in want.items())}
        name = f"Karpenter nodes of EC2NodeClass {nc.inputs['metadata']['name']}"
        if not groups:
            problems.append(f"{name}: securityGroupSelectorTerms select no security group of the stack")
        nodes.append(Endpoint(name, groups, private))
    efs = [Endpoint(f"EFS mount target {mt.name}", set(mt.inputs.get("securityGroups") or []), private)
           for mt in plan.of_type("aws:efs/mountTarget:MountTarget")]
    return control, nodes, efs, problems


def allowed(rules: dict[str, list[Rule]], src: Endpoint, dst: Endpoint, protocol: str, port: int) -> bool:
    """Security groups are stateful: a flow needs an egress rule on the source and an ingress rule on the target."""

    def matches(rule: Rule, peer: Endpoint) -> bool:
        if rule.peers & peer.groups:
            return True
        return any(peer.ranges and all(ipaddress.ip_network(r).subnet_of(ipaddress.ip_network(c))
                                       for r in peer.ranges) for c in rule.cidrs)

    egress = any(rule.direction == "egress" and rule.covers(protocol, port) and matches(rule, dst)
                 for sg in src.groups for rule in rules.get(sg, []))
    ingress = any(rule.direction == "ingress" and rule.covers(protocol, port) and matches(rule, src)
                  for sg in dst.groups for rule in rules.get(sg, []))
    return egress and ingress


# Ports the control plane calls on pods: webhooks and aggregated APIs (KEDA's metrics server serves the external
# metrics API on 6443 and its admission webhooks listen on 9443, tests/test_scaling.py reads both from the chart; the
# Prometheus operator's admission webhook listens on 10250; others use 443 or 8443).
WEBHOOK_PORTS = (443, 6443, 8443, 9443, 10250)


@dataclass(frozen=True)
class Flow:
    what: str
    src: str
    dst: str
    protocol: str
    port: int
    ok: bool


def flows(plan: Plan) -> tuple[list[Flow], list[str]]:
    """Every flow the cluster needs, and whether the security groups allow it."""
    control, nodes, efs, problems = endpoints(plan)
    rules = _rules(plan)
    out: list[Flow] = []

    def check(what: str, src: Endpoint, dst: Endpoint, protocol: str, port: int) -> None:
        out.append(Flow(what, src.name, dst.name, protocol, port, allowed(rules, src, dst, protocol, port)))

    for n in nodes:
        if control:
            check("nodes reach the API server", n, control, "tcp", 443)
            check("the control plane reaches the kubelet", control, n, "tcp", 10250)
            for port in WEBHOOK_PORTS:
                check("the control plane reaches webhooks and aggregated APIs on the node's pods", control, n, "tcp", port)
        for dns in nodes:  # CoreDNS is pinned to the core nodes; checked from and to every node group anyway
            for proto in ("udp", "tcp"):
                check("pods reach CoreDNS", n, dns, proto, 53)
            check("pods reach NIM's port on other nodes (Prometheus, Open WebUI, benchmarks)", n, dns, "tcp", 8000)
            # KEDA asks the HTTP add-on's scaler (gRPC) and Prometheus, both on 9090, wherever they run
            check("KEDA reaches the HTTP add-on's scaler and Prometheus on other nodes", n, dns, "tcp", 9090)
        for mt in efs:
            check("nodes mount the EFS model cache", n, mt, "tcp", 2049)
    return out, problems


def reachability_problems(plan: Plan) -> list[str]:
    found, problems = flows(plan)
    return problems + [f"{f.what}: {f.protocol}/{f.port} from {f.src} to {f.dst} is not allowed by their security groups"
                       for f in found if not f.ok]


# --------------------------------------------------------------------------------------------- 3. destroy

# CSI drivers and the EKS add-on that runs each.
CSI_ADDONS = {"ebs.csi.aws.com": "aws-ebs-csi-driver", "efs.csi.aws.com": "aws-efs-csi-driver"}
WAITER_SUFFIX = "-volumes-released"
# The AWS Load Balancer Controller (components/loadbalancer.py, planning/endpoint.py).
LB_WAITER_SUFFIX = "-load-balancers-released"
LB_CLASS = "service.k8s.aws/nlb"
LB_SERVICE_ACCOUNT = "aws-load-balancer-controller"
GATEWAY_TYPE = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
ENVOY_GATEWAY_CHART = "gateway-helm"  # Envoy Gateway, which makes (and deletes) the Service of a Gateway


def _deletion_prerequisites(plan: Plan) -> dict[str, set[str]]:
    """urn -> urns that must be deleted before it: its dependents, its children, users of a provider."""
    before: dict[str, set[str]] = {r.urn: set() for r in plan.resources}
    for r in plan.resources:
        for dep in r.dependencies:
            if dep in before:
                before[dep].add(r.urn)
        if r.provider:
            provider = r.provider.rsplit("::", 1)[0]
            if provider in before:
                before[provider].add(r.urn)
        if r.parent in before:
            before[r.parent].add(r.urn)
    return before


def destroy_waves(plan: Plan) -> list[list[Resource]]:
    """Resources in the order `pulumi destroy` deletes them: each wave only after the previous ones are gone.

    Resources AWS deletes with another (the EKS-created security group) are left out: Pulumi does not delete them.
    """
    index = {r.urn: r for r in plan.resources}
    before = _deletion_prerequisites(plan)
    deleted: set[str] = set()
    waves = []
    remaining = set(index)
    while remaining:
        wave = sorted((u for u in remaining if before[u] <= deleted), key=lambda u: (index[u].type, index[u].name))
        if not wave:
            raise ValueError(f"dependency cycle among {sorted(remaining)[:5]}")
        waves.append([index[u] for u in wave])
        deleted.update(wave)
        remaining.difference_update(wave)
    return [[r for r in w if r.created_by != opaque.BY_AWS] for w in waves if
            any(r.created_by != opaque.BY_AWS for r in w)]


@dataclass
class AsyncCleanup:
    """What a controller does after `trigger` is deleted, which `guard`'s deletion waits for, with `actors` alive."""

    what: str
    trigger: Resource
    guard: Resource | None
    actors: list[Resource]


def _storage_classes(plan: Plan) -> tuple[dict[str, str], str | None]:
    classes, default = {}, None
    for sc in plan.of_type("kubernetes:storage.k8s.io/v1:StorageClass"):
        name = sc.inputs["metadata"]["name"]
        classes[name] = sc.inputs.get("provisioner")
        if (sc.inputs["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
            default = name
    return classes, default


def _volume_classes(r: Resource, default: str | None) -> set[str]:
    """StorageClasses of the volumes a resource makes (a PVC, a StatefulSet's templates, a Helm release's values)."""
    kind = _k8s_kind(r)
    if kind == "PersistentVolumeClaim":
        return {r.inputs.get("spec", {}).get("storageClassName") or default or ""}
    if kind == "StatefulSet":
        return {(t.get("spec") or {}).get("storageClassName") or default or ""
                for t in r.inputs.get("spec", {}).get("volumeClaimTemplates") or []}
    if r.type == "kubernetes:helm.sh/v3:Release":
        return {v for path, v in _walk(r.inputs.get("values") or {}) if path and path[-1] == "storageClassName"}
    return set()


def _claim_classes(plan: Plan, default: str | None) -> dict[tuple[str, str], str]:
    """(namespace, name) of every PersistentVolumeClaim in the plan -> its StorageClass."""
    return {(pvc.inputs["metadata"].get("namespace", "default"), pvc.inputs["metadata"]["name"]):
            (pvc.inputs.get("spec") or {}).get("storageClassName") or default or ""
            for pvc in plan.of_type("kubernetes:core/v1:PersistentVolumeClaim")}


def _pod_spec(r: Resource) -> dict[str, Any]:
    """The pod spec of a workload (a Pod, or the template of a Deployment, StatefulSet, DaemonSet, Job, CronJob)."""
    kind, spec = _k8s_kind(r), r.inputs.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("spec") or {}) if kind else {}


def _mounted_claims(r: Resource) -> list[tuple[str, str]]:
    """(namespace, claim) of every PersistentVolumeClaim a workload's pods mount."""
    ns = (r.inputs.get("metadata") or {}).get("namespace", "default")
    return [(ns, v["persistentVolumeClaim"]["claimName"]) for v in _pod_spec(r).get("volumes") or []
            if (v.get("persistentVolumeClaim") or {}).get("claimName")]


def egress_path(plan: Plan) -> list[Resource]:
    """What pods in private subnets need to reach AWS APIs (EC2, EFS, ELB) and registries: NAT gateways, the route
    tables that send 0.0.0.0/0 to them or to the internet gateway, those tables' subnet associations, and gateway
    endpoints (S3). Controllers that delete AWS resources on destroy need all of it until they are done."""
    tables = [rt for rt in plan.of_type("aws:ec2/routeTable:RouteTable")
              if any(r.get("cidrBlock") == "0.0.0.0/0" for r in rt.inputs.get("routes") or [])]
    table_ids = {rt.id for rt in tables}
    return [*plan.of_type("aws:ec2/natGateway:NatGateway"), *tables,
            *(a for a in plan.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
              if a.inputs.get("routeTableId") in table_ids),
            *(e for e in plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint") if e.inputs.get("vpcEndpointType") == "Gateway")]


def async_cleanups(plan: Plan) -> list[AsyncCleanup]:
    found: list[AsyncCleanup] = []
    # Every controller here runs on the core nodes, reaches AWS through the NAT route, and gets its credentials
    # through the Pod Identity agent (Karpenter, the EBS driver) or the cluster's OIDC provider (the EFS driver).
    egress = [*egress_path(plan), *plan.of_type("aws:eks/nodeGroup:NodeGroup"),
              *(a for a in plan.of_type("aws:eks/addon:Addon") if a.inputs.get("addonName") == "eks-pod-identity-agent")]
    # Karpenter: deleting a NodePool makes the controller terminate its nodes; the EC2NodeClass's finalizer holds
    # its deletion until every NodeClaim that uses it is gone, and Pulumi waits for that deletion.
    classes = {nc.inputs["metadata"]["name"]: nc for nc in plan.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")}
    controllers = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release")
                   if str(r.inputs.get("chart", "")).rstrip("/").endswith("karpenter")]
    for pool in plan.of_type("kubernetes:karpenter.sh/v1:NodePool"):
        ref = pool.inputs["spec"]["template"]["spec"]["nodeClassRef"]["name"]
        found.append(AsyncCleanup(f"Karpenter terminates the nodes of NodePool {pool.inputs['metadata']['name']}",
                                  pool, classes.get(ref), [*controllers, *egress]))
    # CSI: deleting a volume's claim makes the driver's controller delete the EBS volume or EFS access point.
    sc, default = _storage_classes(plan)
    addons = {a.inputs.get("addonName"): a for a in plan.of_type("aws:eks/addon:Addon")}
    file_systems = plan.of_type("aws:efs/fileSystem:FileSystem")
    waiters = [r for r in plan.resources if r.name.endswith(WAITER_SUFFIX)]

    def volume_cleanup(what: str, trigger: Resource, driver: str) -> AsyncCleanup:
        guard = next((w for w in waiters if driver in (w.inputs.get("drivers") or [])), None)
        actors = [a for a in [addons.get(CSI_ADDONS[driver])] if a] + egress
        if driver == "efs.csi.aws.com":
            actors += file_systems + plan.of_type("aws:efs/mountTarget:MountTarget")
        return AsyncCleanup(what, trigger, guard, actors)

    for r in plan.resources:
        for cls in sorted(_volume_classes(r, default)):
            driver = sc.get(cls)
            if driver in CSI_ADDONS:
                found.append(volume_cleanup(f"the {driver} driver deletes the volumes of {r.type.rsplit(':', 1)[-1]} "
                                            f"{r.name} (StorageClass {cls})", r, driver))
    # A claim in use is not released (the pvc-protection finalizer holds it while a pod mounts it), so every
    # workload whose pods mount one (a StatefulSet, a Job) must be gone before its driver's waiter stops waiting.
    claims = _claim_classes(plan, default)
    for r in plan.resources:
        for ns, claim in _mounted_claims(r):
            cls = claims.get((ns, claim), "")
            driver = sc.get(cls)
            if driver in CSI_ADDONS:
                found.append(volume_cleanup(
                    f"the pods of {r.type.rsplit(':', 1)[-1]} {r.name} release claim {ns}/{claim}, whose volume the "
                    f"{driver} driver then deletes (StorageClass {cls})", r, driver))
    found += load_balancer_cleanups(plan, egress)
    return found


def _lb_controller_identity(plan: Plan) -> list[Resource]:
    """The AWS Load Balancer Controller's Pod Identity association(s), their roles and those roles' attachments."""
    found: list[Resource] = []
    for assoc in plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation"):
        if assoc.inputs.get("serviceAccount") != LB_SERVICE_ACCOUNT:
            continue
        roles = [r for r in plan.of_type("aws:iam/role:Role") if r.outputs.get("arn") == assoc.inputs.get("roleArn")]
        names = {r.outputs.get("name") for r in roles}
        found += [assoc, *roles, *(a for a in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                                   if a.inputs.get("role") in names)]
    return found


def _names_lb_class(value: Any) -> bool:
    return any(v == LB_CLASS for _, v in _walk(value))


def load_balancer_cleanups(plan: Plan, egress: list[Resource]) -> list[AsyncCleanup]:
    """The AWS Load Balancer Controller deletes the NLB (and its security groups) of every Service of its class
    once the Service goes; the Service keeps the controller's finalizer until then. The gateway's Service is made in
    the cluster by Envoy Gateway, not by the stack, so what stands for it is what makes it: a Gateway API Gateway,
    or any object that names the controller's class (an EnvoyProxy). Each of those goes before a
    `-load-balancers-released` waiter, whose deletion waits until no such Service is left; that waiter goes before
    the controller, its IAM, its nodes and the network the NLB lives in, and before Envoy Gateway (chart
    `gateway-helm`), which deletes the Service once its Gateway is gone: without it the Service would stay, and the
    wait time out. A Service of type LoadBalancer in the plan is its own guard (Pulumi's delete waits for its
    finalizer)."""
    found: list[AsyncCleanup] = []
    controllers = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release")
                   if "aws-load-balancer-controller" in str(r.inputs.get("chart", ""))]
    waiters = [r for r in plan.resources if r.name.endswith(LB_WAITER_SUFFIX)]
    actors = [*controllers, *_lb_controller_identity(plan), *egress, *plan.of_type("aws:ec2/subnet:Subnet"),
              *plan.of_type("aws:ec2/vpc:Vpc")]
    if controllers:
        # the waiter the controller's own component makes: the first registered
        found.append(AsyncCleanup("the AWS Load Balancer Controller deletes the NLBs of the Services of class "
                                  f"{LB_CLASS} (made in the cluster, outside the plan)",
                                  waiters[0] if waiters else controllers[0], waiters[0] if waiters else None, actors))
    for svc in plan.of_type("kubernetes:core/v1:Service"):
        if (svc.inputs.get("spec") or {}).get("type") == "LoadBalancer":
            found.append(AsyncCleanup(f"the load balancer of Service {svc.inputs['metadata']['name']} is deleted",
                                      svc, svc, [*controllers, *egress]))
    service_makers = _releases_of(plan, ENVOY_GATEWAY_CHART)
    for r in plan.resources:
        if r in waiters or r in controllers or _k8s_kind(r) == "Service":
            continue
        if r.type == GATEWAY_TYPE or (r.type.startswith("kubernetes:") and _names_lb_class(r.inputs)):
            # the waiter it is deleted before (the first of them to go, when several), else any
            mine = [w for w in waiters if plan.depends_on(r, w)]
            guard = next((w for w in mine if not any(plan.depends_on(o, w) for o in mine if o is not w)),
                         waiters[0] if waiters else None)
            found.append(AsyncCleanup(f"the NLB of the Service that {r.type.rsplit(':', 1)[-1]} {r.name} makes is "
                                      "deleted by the AWS Load Balancer Controller", r, guard,
                                      [*service_makers, *actors]))
    return found


KEDA_CHART = "keda"
HTTP_ADD_ON_CHART = "keda-add-ons-http"


def _releases_of(plan: Plan, chart: str) -> list[Resource]:
    return [r for r in plan.of_type("kubernetes:helm.sh/v3:Release")
            if str(r.inputs.get("chart", "")).rstrip("/").rsplit("/", 1)[-1] == chart]


def scaler_problems(plan: Plan) -> list[str]:
    """KEDA's objects on destroy (KEDA 2.20 controllers/keda/scaledobject_finalizer.go; HTTP add-on 0.15):
    - a ScaledObject goes before its scale target: while it exists KEDA may scale the target (up, too), and with
      `restoreToOriginalReplicaCount` its deletion scales a model at zero back up, a GPU node launched mid-destroy;
    - it goes while KEDA runs: only KEDA's operator removes its finalizer, or it (and its namespace) hang for ever;
    - a route (InterceptorRoute) goes after the ScaledObject that reads it and before the add-on, and the add-on
      (whose chart holds a ScaledObject of its own) before KEDA."""
    problems: list[str] = []
    objects = _k8s_objects(plan)
    keda, add_on = _releases_of(plan, KEDA_CHART), _releases_of(plan, HTTP_ADD_ON_CHART)

    def outlived_by(r: Resource, controllers: list[Resource], what: str) -> None:
        if not any(plan.depends_on(r, c) for c in controllers):
            problems.append(f"{_k8s_kind(r)} {r.name}: {what} can be deleted before it")

    for so in plan.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject"):
        ns, spec = so.inputs["metadata"].get("namespace", "default"), so.inputs.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        target = objects.get((ref.get("kind", "Deployment"), ns, ref.get("name", "")))
        if target is None:
            problems.append(f"ScaledObject {so.name}: scales {ref.get('kind', 'Deployment')} {ns}/{ref.get('name')}, "
                            "which the stack does not create")
        elif not plan.depends_on(so, target):
            problems.append(f"ScaledObject {so.name}: does not depend on its target {target.name}, so destroy can "
                            "delete the target first while KEDA still scales it")
        if (spec.get("advanced") or {}).get("restoreToOriginalReplicaCount"):
            problems.append(f"ScaledObject {so.name}: restoreToOriginalReplicaCount scales its target back up when "
                            "it is deleted (a model at zero would get a GPU node mid-destroy)")
        outlived_by(so, keda, "KEDA (which removes its finalizer)")
        for trigger in spec.get("triggers") or []:
            route_name = (trigger.get("metadata") or {}).get("interceptorRoute")
            if not route_name:
                continue
            route = objects.get(("InterceptorRoute", ns, route_name))
            if route is None:
                problems.append(f"ScaledObject {so.name}: reads InterceptorRoute {ns}/{route_name}, which the stack "
                                "does not create")
            elif not plan.depends_on(so, route):
                problems.append(f"ScaledObject {so.name}: does not depend on InterceptorRoute {route.name} it reads")
            outlived_by(so, add_on, "the HTTP add-on (whose scaler its trigger asks)")
    for route in plan.of_type("kubernetes:http.keda.sh/v1beta1:InterceptorRoute"):
        outlived_by(route, add_on, "the HTTP add-on")
    for release in add_on:
        outlived_by(release, keda, "KEDA (which removes the finalizer of the add-on's own ScaledObject)")
    return problems


# Kubernetes objects whose pod template places pods: spec.template.spec (a CronJob's one level deeper).
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def _placements(body: Any) -> tuple[list[dict[str, str]], list[list[dict[str, Any]]], list[dict[str, Any]]]:
    """(nodeSelector maps, required node-affinity terms lists, tolerations) anywhere in a pod spec or Helm values."""
    selectors: list[dict[str, str]] = []
    terms: list[list[dict[str, Any]]] = []
    tolerations: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k == "nodeSelector" and isinstance(v, dict):
                    selectors.append(v)
                elif k == "nodeSelectorTerms" and isinstance(v, list):
                    terms.append(v)
                elif k == "tolerations" and isinstance(v, list):
                    tolerations.extend(t for t in v if isinstance(t, dict))
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(body)
    return selectors, terms, tolerations


def _tolerated(taint: dict[str, Any], tolerations: list[dict[str, Any]]) -> bool:
    for t in tolerations:
        if t.get("effect") not in (None, "", taint.get("effect")):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, "", taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _admits(labels: dict[str, str], selectors: list[dict[str, str]], terms: list[list[dict[str, Any]]]) -> bool:
    """Whether some placement admits a node with these (NodePool template) labels; keys the labels do not carry
    (architecture, instance type) are taken as satisfiable. No placement at all admits every node."""
    def selector_ok(sel: dict[str, str]) -> bool:
        return all(labels[k] == v for k, v in sel.items() if k in labels)

    def expression_ok(e: dict[str, Any]) -> bool:
        key, op = e.get("key"), e.get("operator")
        if key not in labels:
            return True
        values = e.get("values") or []
        return {"In": labels[key] in values, "NotIn": labels[key] not in values, "Exists": True,
                "DoesNotExist": False}.get(op, True)

    def term_ok(term: dict[str, Any]) -> bool:
        return all(expression_ok(e) for e in term.get("matchExpressions") or [])

    if not selectors and not terms:
        return True
    return any(selector_ok(s) for s in selectors) or any(any(term_ok(t) for t in ts) for ts in terms)


def pool_workloads(plan: Plan) -> list[tuple[Resource, Resource]]:
    """(workload, NodePool) for every Helm release and pod-template object whose pods may run on that NodePool's
    nodes: a node selector or required node affinity admits the pool's labels (none at all admits every pool),
    and the pool's taints are tolerated. For a release, any placement in its values counts."""
    pools = plan.of_type("kubernetes:karpenter.sh/v1:NodePool")
    found = []
    for r in plan.resources:
        kind = _k8s_kind(r)
        if r.type == "kubernetes:helm.sh/v3:Release":
            body = r.inputs.get("values") or {}
        elif kind in POD_TEMPLATE_KINDS:
            body = ((r.inputs.get("spec") or {}).get("template") or {}).get("spec") or {}
        else:
            continue
        selectors, terms, tolerations = _placements(body)
        for pool in pools:
            template = pool.inputs["spec"]["template"]
            labels = (template.get("metadata") or {}).get("labels") or {}
            taints = (template.get("spec") or {}).get("taints") or []
            if _admits(labels, selectors, terms) and all(_tolerated(t, tolerations) for t in taints):
                found.append((r, pool))
    return found


def destroy_problems(plan: Plan) -> list[str]:
    problems = []
    try:
        destroy_waves(plan)
    except ValueError as err:
        return [str(err)]
    problems += scaler_problems(plan)
    # Pods on a NodePool's nodes go before the NodePool: otherwise Karpenter drains them while it terminates the
    # nodes, waits on their disruption budgets, and they stay Pending with nowhere to go.
    for workload, pool in pool_workloads(plan):
        if not plan.depends_on(workload, pool):
            problems.append(f"{workload.type.rsplit(':', 1)[-1]} {workload.name} runs pods on the nodes of NodePool "
                            f"{pool.inputs['metadata']['name']} but can be deleted after it: Karpenter would drain "
                            "them while it terminates the nodes")
    for c in async_cleanups(plan):
        if c.guard is None:
            problems.append(f"{c.what}: nothing waits for it on destroy, so what it needs can be deleted first")
            continue
        if c.guard is not c.trigger and not plan.depends_on(c.trigger, c.guard):
            problems.append(f"{c.what}: {c.guard.name} waits for it but can be deleted before {c.trigger.name}")
        early = [f"{a.type.rsplit(':', 1)[-1]} {a.name}" for a in c.actors if not plan.depends_on(c.guard, a)]
        if early:
            problems.append(f"{c.what}: it needs {', '.join(early)}, which can be deleted before {c.guard.name} "
                            "has waited for it")
    return problems


def render_destroy(plan: Plan) -> list[str]:
    """The destroy order, wave by wave, with what each asynchronous deletion waits on."""
    started: dict[str, list[AsyncCleanup]] = {}  # by the urn whose deletion starts them
    awaited: dict[str, list[AsyncCleanup]] = {}  # by the urn whose deletion waits for them
    for c in async_cleanups(plan):
        started.setdefault(c.trigger.urn, []).append(c)
        if c.guard is not None:
            awaited.setdefault(c.guard.urn, []).append(c)
    lines = []
    for i, wave in enumerate(destroy_waves(plan), 1):
        lines.append(f"{i:>3}. " + ", ".join(f"{r.type.rsplit(':', 1)[-1]} {r.name}" for r in wave))
        for r in wave:
            lines += [f"       then asynchronously: {c.what}" for c in started.get(r.urn, [])]
            lines += [f"       {r.name} is deleted only once done: {c.what}" for c in awaited.get(r.urn, [])]
    return lines


# ------------------------------------------------------------------------------------------------- all


CHECKS = {
    "references": reference_problems,
    "reachability": reachability_problems,
    "destroy": destroy_problems,
}


def all_problems(plan: Plan) -> dict[str, list[str]]:
    return {name: check(plan) for name, check in CHECKS.items()}
