"""Karpenter GPU capacity: controller, IAM, interruption handling, node classes and pools, device plugin."""

from __future__ import annotations

import json

import pytest

from components.karpenter import controller_policies
from tests.conftest import KARPENTER, P5, attached_to, parse, plan_for, problems
from tools import opaque

NAME = "nim-on-eks-dev-karpenter"


def docs(plan, type_="aws:iam/policy:Policy"):
    return {r.name.removeprefix(NAME + "-controller-"): json.loads(r.inputs["policy"])
            for r in plan.within(KARPENTER, type_=type_)}


def test_controller_release(dev_plan):
    release = dev_plan.one("kubernetes:helm.sh/v3:Release", f"{NAME}-controller")
    i = release.inputs
    assert (i["chart"], i["version"]) == ("oci://public.ecr.aws/karpenter/karpenter", "1.14.1")
    assert (i["name"], i["namespace"]) == ("karpenter", "kube-system")
    v = i["values"]
    assert v["settings"] == {"clusterName": "nim-on-eks-dev", "interruptionQueue": "nim-on-eks-dev-karpenter"}
    assert v["replicas"] == 2
    assert v["controller"]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert v["nodeSelector"]["nim-on-eks/node-pool"] == "core"  # core node group, never Karpenter's nodes
    assert v["serviceAccount"] == {"name": "karpenter"}
    [provider] = dev_plan.of_type("pulumi:providers:kubernetes")
    assert release.provider.startswith(provider.urn)


def test_controller_identity(dev_plan):
    assoc = dev_plan.one("aws:eks/podIdentityAssociation:PodIdentityAssociation", f"{NAME}-controller")
    role = dev_plan.one("aws:iam/role:Role", f"{NAME}-controller-role")
    assert (assoc.inputs["namespace"], assoc.inputs["serviceAccount"]) == ("kube-system", "karpenter")
    assert assoc.inputs["roleArn"].startswith(f"arn:aws:iam::123456789012:role/{NAME}-controller-role-")
    assert role.urn in assoc.dependencies
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": ["pods.eks.amazonaws.com"]}
    assert trust["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    agent = dev_plan.one("aws:eks/addon:Addon", "nim-on-eks-dev-pod-identity-agent")
    assert dev_plan.depends_on(assoc, agent)
    attached = {a.inputs["policyArn"].rsplit("/", 1)[-1] for a in dev_plan.of_type(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment") if role.urn in a.dependencies}
    assert {f"{NAME}-controller-{k}" for k in ("node-lifecycle", "iam-integration", "eks-integration", "interruption",
                                    "zonal-shift", "resource-discovery")} <= attached


# The controller's permissions as Karpenter's own getting-started template grants them, transcribed statement by
# statement (aws/karpenter-provider-aws @ 1d927085dd81a9df9301e613f371dac5b4d16bfe,
# website/content/en/v1.14/getting-started/getting-started-with-karpenter/cloudformation.yaml: NodeLifecyclePolicy,
# IAMIntegrationPolicy, EKSIntegrationPolicy, InterruptionPolicy, ZonalShiftPolicy, ResourceDiscoveryPolicy).
# {P} partition, {R} region, {A} account, {C} cluster name; NODE_ROLE and QUEUE the node role's and queue's ARNs.
EC2 = "arn:{P}:ec2:{R}"
INSTANCE_PROFILE = "arn:{P}:iam::{A}:instance-profile/*"
CLUSTER_ARN = "arn:{P}:eks:{R}:{A}:cluster/{C}"
CREATED = [f"{EC2}:*:{kind}/*" for kind in ("fleet", "instance", "volume", "network-interface", "launch-template",
                                            "spot-instances-request")]
OWNED = {"aws:ResourceTag/kubernetes.io/cluster/{C}": "owned"}
TAGGED_OWNED = {"aws:RequestTag/kubernetes.io/cluster/{C}": "owned", "aws:RequestTag/eks:eks-cluster-name": "{C}"}
IN_NODEPOOL = {"StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}}
FOR_NODEPOOL = {"StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}}
UPSTREAM = {  # policy -> Sid -> (actions, resources, condition)
    "node-lifecycle": {
        "AllowScopedEC2InstanceAccessActions": (
            {"ec2:RunInstances", "ec2:CreateFleet"},
            {f"{EC2}::image/*", f"{EC2}::snapshot/*", f"{EC2}:*:security-group/*", f"{EC2}:*:subnet/*",
             f"{EC2}:*:capacity-reservation/*", f"{EC2}:*:placement-group/*"}, None),
        "AllowScopedEC2LaunchTemplateAccessActions": (
            {"ec2:RunInstances", "ec2:CreateFleet"}, {f"{EC2}:*:launch-template/*"},
            {"StringEquals": OWNED, **IN_NODEPOOL}),
        "AllowScopedEC2InstanceActionsWithTags": (
            {"ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"}, set(CREATED),
            {"StringEquals": TAGGED_OWNED, **FOR_NODEPOOL}),
        "AllowScopedResourceCreationTagging": (
            {"ec2:CreateTags"}, set(CREATED),
            {"StringEquals": {**TAGGED_OWNED,
                              "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]},
             **FOR_NODEPOOL}),
        "AllowScopedResourceTagging": (
            {"ec2:CreateTags"}, {f"{EC2}:*:instance/*"},
            {"StringEquals": OWNED, **IN_NODEPOOL,
             "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": "{C}"},
             "ForAllValues:StringEquals": {"aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]}}),
        "AllowScopedDeletion": (
            {"ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"},
            {f"{EC2}:*:instance/*", f"{EC2}:*:launch-template/*"}, {"StringEquals": OWNED, **IN_NODEPOOL}),
    },
    "iam-integration": {
        "AllowPassingInstanceRole": (
            {"iam:PassRole"}, {"NODE_ROLE"},
            {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}}),
        "AllowScopedInstanceProfileCreationActions": (
            {"iam:CreateInstanceProfile"}, {INSTANCE_PROFILE},
            {"StringEquals": {**TAGGED_OWNED, "aws:RequestTag/topology.kubernetes.io/region": "{R}"},
             "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}}),
        "AllowScopedInstanceProfileTagActions": (
            {"iam:TagInstanceProfile"}, {INSTANCE_PROFILE},
            {"StringEquals": {**OWNED, "aws:ResourceTag/topology.kubernetes.io/region": "{R}", **TAGGED_OWNED,
                              "aws:RequestTag/topology.kubernetes.io/region": "{R}"},
             "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                            "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}}),
        "AllowScopedInstanceProfileActions": (
            {"iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"},
            {INSTANCE_PROFILE},
            {"StringEquals": {**OWNED, "aws:ResourceTag/topology.kubernetes.io/region": "{R}"},
             "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"}}),
    },
    "eks-integration": {"AllowAPIServerEndpointDiscovery": ({"eks:DescribeCluster"}, {CLUSTER_ARN}, None)},
    "interruption": {
        "AllowInterruptionQueueActions": (
            {"sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"}, {"QUEUE"}, None),
    },
    "zonal-shift": {
        "AllowZonalShiftStatusReadOnly": (
            {"arc-zonal-shift:GetManagedResource"}, {"*"},
            {"StringEquals": {"arc-zonal-shift:ResourceIdentifier": CLUSTER_ARN}}),
    },
    "resource-discovery": {
        "AllowRegionalReadActions": (
            {f"ec2:Describe{what}" for what in (
                "CapacityReservations", "Images", "Instances", "InstanceStatus", "InstanceTypeOfferings",
                "InstanceTypes", "LaunchTemplates", "PlacementGroups", "SecurityGroups", "SpotPriceHistory",
                "Subnets")},
            {"*"}, {"StringEquals": {"aws:RequestedRegion": "{R}"}}),
        "AllowSSMReadActions": ({"ssm:GetParameter"}, {"arn:{P}:ssm:{R}::parameter/aws/service/*"}, None),
        "AllowPricingReadActions": ({"pricing:GetProducts"}, {"*"}, None),
        "AllowUnscopedInstanceProfileListAction": ({"iam:ListInstanceProfiles"}, {"*"}, None),
        "AllowInstanceProfileReadActions": ({"iam:GetInstanceProfile"}, {INSTANCE_PROFILE}, None),
    },
}


def _as_set(value) -> frozenset:
    return frozenset(value if isinstance(value, list) else [value])


def _condition(condition) -> dict:
    """Operator -> key -> set of values: `"a"` and `["a"]` mean the same to IAM; order never matters."""
    return {op: {k: _as_set(v) for k, v in keys.items()} for op, keys in (condition or {}).items()}


def normalized(doc: dict) -> dict:
    """Sid -> (Effect, actions, resources, condition) of a policy document; every statement must have a Sid."""
    found = {}
    for s in doc["Statement"]:
        assert s["Sid"] not in found, f"duplicate Sid {s['Sid']}"
        assert set(s) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, s  # no NotAction/NotResource
        found[s["Sid"]] = (s["Effect"], _as_set(s["Action"]), _as_set(s["Resource"]), _condition(s.get("Condition")))
    return found


def upstream(partition, region, account, cluster, node_role_arn, queue_arn) -> dict:
    def fill(text: str) -> str:
        text = text.replace("{P}", partition).replace("{R}", region).replace("{A}", account).replace("{C}", cluster)
        return {"NODE_ROLE": node_role_arn, "QUEUE": queue_arn}.get(text, text)

    def fill_any(value):
        if isinstance(value, dict):
            return {fill(k): fill_any(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill_any(v) for v in value]
        return value if value is None else fill(value)

    return {policy: {sid: ("Allow", frozenset(fill(a) for a in actions), frozenset(fill(r) for r in resources),
                           _condition(fill_any(condition)))
                     for sid, (actions, resources, condition) in statements.items()}
            for policy, statements in UPSTREAM.items()}


def assert_same_statements(found: dict, expected: dict):
    assert set(found) == set(expected)
    for policy in expected:
        assert set(found[policy]) == set(expected[policy]), policy
        for sid, want in expected[policy].items():
            effect, actions, resources, condition = found[policy][sid]
            assert effect == want[0], (policy, sid)
            assert actions == want[1], (policy, sid, sorted(actions ^ want[1]))
            assert resources == want[2], (policy, sid, sorted(resources ^ want[2]))
            assert condition == want[3], (policy, sid)


def test_controller_policies_are_karpenters_own(dev_plan):
    """Statement by statement, action by action, resource by resource, condition by condition: upstream's."""
    found = {key: normalized(doc) for key, doc in docs(dev_plan).items()}
    node_role_name = dev_plan.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass",
                                  f"{NAME}-gpu-class").inputs["spec"]["role"]  # the role the nodes get
    queue = dev_plan.one("aws:sqs/queue:Queue").inputs["name"]
    expected = upstream("aws", "us-west-2", "123456789012", "nim-on-eks-dev",
                        f"arn:aws:iam::123456789012:role/{node_role_name}",
                        f"arn:aws:sqs:us-west-2:123456789012:{queue}")
    assert_same_statements(found, expected)
    # the documents are built from the node role and the queue: IAM changes wait for both to exist
    node_role = dev_plan.one("aws:iam/role:Role", f"{NAME}-node-role")
    queue_resource = dev_plan.one("aws:sqs/queue:Queue")
    policies = {r.name.removeprefix(NAME + "-controller-"): r
                for r in dev_plan.within(KARPENTER, type_="aws:iam/policy:Policy")}
    assert node_role.urn in policies["iam-integration"].dependencies
    assert queue_resource.urn in policies["interruption"].dependencies


@pytest.mark.parametrize("partition, region", [("aws", "eu-central-1"), ("aws-us-gov", "us-gov-west-1"),
                                               ("aws-cn", "cn-north-1")])
def test_policy_builder_follows_upstream_in_any_partition_and_region(partition, region):
    built = controller_policies(partition, region, "111122223333", "team-a", "arn:x:iam::1:role/nodes",
                                "arn:x:sqs:q")
    found = {key: normalized(doc) for key, doc in built.items()}
    assert_same_statements(found, upstream(partition, region, "111122223333", "team-a", "arn:x:iam::1:role/nodes",
                                           "arn:x:sqs:q"))


def test_no_wildcard_grants(dev_plan):
    unconditioned_star = set()
    for doc in docs(dev_plan).values():
        assert doc["Version"] == "2012-10-17"
        for s in doc["Statement"]:
            assert s["Effect"] == "Allow"
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            assert all("*" not in a for a in actions), s  # no wildcard actions at all
            if s["Resource"] == "*" and "Condition" not in s:
                unconditioned_star.update(actions)
    # only read calls that have no resource-level permissions are granted on everything
    assert unconditioned_star == {"pricing:GetProducts", "iam:ListInstanceProfiles"}


def test_node_role_and_access_entry(dev_plan):
    role = dev_plan.one("aws:iam/role:Role", f"{NAME}-node-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": ["ec2.amazonaws.com"]}
    attached = {a.inputs["policyArn"].rsplit("/", 1)[-1] for a in attached_to(dev_plan, role)}
    assert attached == {"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryPullOnly",
                        "AmazonSSMManagedInstanceCore"}
    entry = dev_plan.one("aws:eks/accessEntry:AccessEntry")
    assert entry.inputs["type"] == "EC2_LINUX"
    assert entry.inputs["clusterName"] == "nim-on-eks-dev"
    assert role.urn in entry.dependencies


def test_discovery_tags(dev_plan):
    tag = dev_plan.one("aws:ec2/tag:Tag")
    assert (tag.inputs["key"], tag.inputs["value"]) == ("karpenter.sh/discovery", "nim-on-eks-dev")
    # The group EKS creates (control plane + core nodes), not pulumi-eks's additional group (issue 11, defect 1).
    [eks_created] = [r for r in dev_plan.of_type("aws:ec2/securityGroup:SecurityGroup") if r.created_by == opaque.BY_AWS]
    pulumi_eks_groups = {r.id for r in dev_plan.of_type("aws:ec2/securityGroup:SecurityGroup")
                         if r.created_by == opaque.BY_COMPONENT}
    assert tag.inputs["resourceId"] == eks_created.id and tag.inputs["resourceId"] not in pulumi_eks_groups
    assert dev_plan.depends_on(tag, dev_plan.one("aws:eks/cluster:Cluster"))
    private = [s for s in dev_plan.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name]
    assert all(s.inputs["tags"]["karpenter.sh/discovery"] == "nim-on-eks-dev" for s in private)


# The interruption queue, its policy and the EventBridge rules feeding it, as upstream's template defines them
# (same file as UPSTREAM: KarpenterInterruptionQueue, KarpenterInterruptionQueuePolicy and the five *Rule resources).
UPSTREAM_EVENTS = {("aws.health", "AWS Health Event"), ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
                   ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
                   ("aws.ec2", "EC2 Instance State-change Notification"),
                   ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning")}


def test_interruption_queue_policy_and_rules(dev_plan):
    queue = dev_plan.one("aws:sqs/queue:Queue")
    assert queue.inputs["name"] == "nim-on-eks-dev-karpenter"
    assert queue.inputs["messageRetentionSeconds"] == 300
    assert queue.inputs["sqsManagedSseEnabled"] is True
    queue_arn = "arn:aws:sqs:us-west-2:123456789012:nim-on-eks-dev-karpenter"
    queue_policy = dev_plan.one("aws:sqs/queuePolicy:QueuePolicy")
    assert queue_policy.inputs["queueUrl"].endswith("/123456789012/nim-on-eks-dev-karpenter")
    allow, deny = json.loads(queue_policy.inputs["policy"])["Statement"]
    allow.pop("Sid", None)  # upstream's allow statement has none
    assert allow == {"Effect": "Allow", "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                     "Action": "sqs:SendMessage", "Resource": queue_arn}
    # nothing reaches the queue without TLS: every SQS action, from anyone
    assert {**deny, "Condition": _condition(deny["Condition"])} == {
        "Sid": "DenyHTTP", "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": queue_arn,
        "Condition": {"Bool": {"aws:SecureTransport": frozenset({"false"})}}}
    rules = {r.name: json.loads(r.inputs["eventPattern"])
             for r in dev_plan.of_type("aws:cloudwatch/eventRule:EventRule")}
    for pattern in rules.values():
        assert set(pattern) == {"source", "detail-type"}, pattern  # nothing narrower than upstream's match
        assert len(pattern["source"]) == len(pattern["detail-type"]) == 1, pattern
    assert {(p["source"][0], p["detail-type"][0]) for p in rules.values()} == UPSTREAM_EVENTS
    targets = {t.name: t.inputs for t in dev_plan.of_type("aws:cloudwatch/eventTarget:EventTarget")}
    assert set(targets) == set(rules)  # one target per rule, named after it
    for target in targets.values():
        assert (target["arn"], target["targetId"]) == (queue_arn, "KarpenterInterruptionQueueTarget")


def node_pool(plan, name):
    return plan.one("kubernetes:karpenter.sh/v1:NodePool", f"{NAME}-{name}-pool").inputs


def requirement(pool, key):
    [req] = [r for r in pool["spec"]["template"]["spec"]["requirements"] if r["key"] == key]
    return req


def requirements(pool) -> dict[str, tuple[str, list[str]]]:
    reqs = pool["spec"]["template"]["spec"]["requirements"]
    found = {r["key"]: (r["operator"], r["values"]) for r in reqs}
    assert len(found) == len(reqs), reqs  # one requirement per key
    return found


def gpu_pool_requirements(families: list[str], capacity_types: list[str]) -> dict[str, tuple[str, list[str]]]:
    """What the GPU pool must ask for (at least): the configured families and capacity types, NVIDIA GPUs, x86-64
    Linux (every allowed family is x86-64; the NIM images and the AL2023 NVIDIA AMI Karpenter picks are amd64)."""
    return {"karpenter.k8s.aws/instance-family": ("In", families),
            "karpenter.sh/capacity-type": ("In", capacity_types),
            "karpenter.k8s.aws/instance-gpu-manufacturer": ("In", ["nvidia"]),
            "kubernetes.io/arch": ("In", ["amd64"]),
            "kubernetes.io/os": ("In", ["linux"])}


def test_gpu_node_pool_defaults(dev_plan):
    pool = node_pool(dev_plan, "gpu")
    spec = pool["spec"]
    assert pool["metadata"]["name"] == "gpu"
    assert requirement(pool, "karpenter.k8s.aws/instance-family")["values"] == ["g5", "g6", "g6e"]
    assert requirement(pool, "karpenter.sh/capacity-type")["values"] == ["spot", "on-demand"]
    assert requirement(pool, "karpenter.k8s.aws/instance-gpu-manufacturer") == {
        "key": "karpenter.k8s.aws/instance-gpu-manufacturer", "operator": "In", "values": ["nvidia"]}
    assert spec["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    assert spec["template"]["metadata"]["labels"]["nim-on-eks/node-pool"] == "gpu"
    assert spec["limits"] == {"nvidia.com/gpu": "16"}
    assert spec["disruption"]["consolidationPolicy"] == "WhenEmpty"  # never evict a serving model to repack
    assert spec["disruption"]["consolidateAfter"] == "5m"
    # forceful in Karpenter v1: an expiry would take every node launched together down at once (issue 11, defect 4)
    assert spec["template"]["spec"]["expireAfter"] == "Never"
    assert node_pool(dev_plan, "cpu")["spec"]["template"]["spec"]["expireAfter"] == "Never"
    # images and the kubelet live on local NVMe: never a type without it (issue 11, defect 6)
    assert requirement(pool, "karpenter.k8s.aws/instance-local-nvme") == {
        "key": "karpenter.k8s.aws/instance-local-nvme", "operator": "Gt", "values": ["99"]}
    assert spec["template"]["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                        "name": "gpu"}


def test_gpu_node_pool_for_p5_on_demand():
    pool = node_pool(plan_for(*P5), "gpu")
    assert requirement(pool, "karpenter.k8s.aws/instance-family")["values"] == ["p4de", "p5"]
    assert requirement(pool, "karpenter.sh/capacity-type")["values"] == ["on-demand"]
    assert pool["spec"]["limits"] == {"nvidia.com/gpu": "32"}
    assert pool["spec"]["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]


def test_gpu_pool_requirements():
    for plan, families, capacity in [(plan_for(), ["g5", "g6", "g6e"], ["spot", "on-demand"]),
                                     (plan_for(*P5), ["p4de", "p5"], ["on-demand"])]:
        found = requirements(node_pool(plan, "gpu"))
        for key, wanted in gpu_pool_requirements(families, capacity).items():
            assert found.get(key) == wanted, key


def test_gpu_pool_disruption():
    """Only empty GPU nodes are consolidated (a serving model is never evicted to repack), one node at a time
    (Karpenter's default budget would be 10% of the nodes)."""
    assert node_pool(plan_for(), "gpu")["spec"]["disruption"] == {
        "consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m", "budgets": [{"nodes": "1"}]}


def test_gpu_node_class(dev_plan):
    nc = dev_plan.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", f"{NAME}-gpu-class").inputs["spec"]
    assert nc["amiSelectorTerms"] == [{"alias": "al2023@v20260714"}]
    role = dev_plan.one("aws:iam/role:Role", f"{NAME}-node-role")
    assert nc["role"].startswith(f"{NAME}-node-role-")
    gpu_class = dev_plan.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", f"{NAME}-gpu-class")
    assert role.urn in gpu_class.dependencies
    assert nc["subnetSelectorTerms"] == nc["securityGroupSelectorTerms"] == [
        {"tags": {"karpenter.sh/discovery": "nim-on-eks-dev"}}]
    [bdm] = nc["blockDeviceMappings"]
    assert bdm["rootVolume"] is True
    # the OS only: images and the kubelet are on the RAID0 local NVMe
    assert bdm["ebs"] == {"volumeSize": "40Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True}
    assert nc["instanceStorePolicy"] == "RAID0"
    assert nc["metadataOptions"]["httpTokens"] == "required"
    plan = plan_for("ami_alias=al2023@v20260101", "gpu_root_volume_gb=500")
    nc = plan.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", f"{NAME}-gpu-class").inputs["spec"]
    assert nc["amiSelectorTerms"] == [{"alias": "al2023@v20260101"}]
    assert nc["blockDeviceMappings"][0]["ebs"]["volumeSize"] == "500Gi"


@pytest.mark.parametrize("key", ["gpu", "cpu"])
def test_node_classes_keep_pods_away_from_instance_metadata(dev_plan, key):
    """IMDSv2 only, and a hop limit of 1 so that pods (one hop further than the node) cannot read the node role's
    credentials: Karpenter's default and the EKS best practice it links (aws/karpenter-provider-aws @ 1d927085,
    website/content/en/v1.14/concepts/nodeclasses.md, spec.metadataOptions)."""
    nc = dev_plan.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", f"{NAME}-{key}-class").inputs["spec"]
    assert nc["metadataOptions"] == {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled",
                                     "httpPutResponseHopLimit": 1, "httpTokens": "required"}
    [bdm] = nc["blockDeviceMappings"]
    assert (bdm["rootVolume"], bdm["ebs"]["encrypted"], bdm["ebs"]["deleteOnTermination"]) == (True, True, True)


def test_cpu_pool_for_general_workloads(dev_plan):
    """Requirements, consolidation and limits: tests/test_lean.py."""
    pool = node_pool(dev_plan, "cpu")
    assert pool["spec"]["template"]["metadata"]["labels"] == {"nim-on-eks/node-pool": "cpu"}
    assert "taints" not in pool["spec"]["template"]["spec"]


def test_device_plugin(dev_plan):
    release = dev_plan.one("kubernetes:helm.sh/v3:Release", f"{NAME}-nvidia-device-plugin")
    i = release.inputs
    assert (i["chart"], i["version"]) == ("nvidia-device-plugin", "0.20.0")
    assert i["repositoryOpts"]["repo"] == "https://nvidia.github.io/k8s-device-plugin"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in i["values"]["tolerations"]
    assert i["values"]["nodeSelector"] == {"nim-on-eks/node-pool": "gpu"}
    labels = node_pool(dev_plan, "gpu")["spec"]["template"]["metadata"]["labels"]
    assert labels["nvidia.com/gpu.present"] == "true"  # what the chart's default affinity also looks for


def test_order_of_creation_and_destruction(dev_plan):
    release = dev_plan.one("kubernetes:helm.sh/v3:Release", f"{NAME}-controller")
    pools = dev_plan.of_type("kubernetes:karpenter.sh/v1:NodePool")
    classes = dev_plan.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    # pools and classes are deleted while the controller still runs, so it terminates the nodes it launched
    for r in pools + classes:
        assert dev_plan.depends_on(r, release), r.name
    # each pool is created after the node class it launches from, and deleted before it
    by_name = {c.inputs["metadata"]["name"]: c for c in classes}
    for pool in pools:
        node_class = by_name[pool.inputs["spec"]["template"]["spec"]["nodeClassRef"]["name"]]
        assert dev_plan.depends_on(pool, node_class), pool.name
    # interruption events reach the queue before the controller reads it, and for as long as it runs
    for rule_target in dev_plan.of_type("aws:cloudwatch/eventTarget:EventTarget"):
        assert dev_plan.depends_on(release, rule_target), rule_target.name
    # the controller is deleted before its IAM, its queue, the node group and the cluster
    for other in [dev_plan.one("aws:eks/podIdentityAssociation:PodIdentityAssociation", f"{NAME}-controller"),
                  dev_plan.one("aws:sqs/queuePolicy:QueuePolicy"),
                  dev_plan.one("aws:eks/accessEntry:AccessEntry"),
                  dev_plan.one("aws:eks/nodeGroup:NodeGroup"),
                  dev_plan.one("eks:index:Cluster"),
                  *dev_plan.within(KARPENTER, type_="aws:iam/rolePolicyAttachment:RolePolicyAttachment")]:
        assert dev_plan.depends_on(release, other), other.name
    # ... and the cluster before the VPC's subnets, so nothing Karpenter launched holds the VPC
    for subnet in dev_plan.of_type("aws:ec2/subnet:Subnet"):
        assert dev_plan.depends_on(release, subnet)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"gpu_instance_families": '["g5", "m5"]'}, "gpu_instance_families: '[\"g5\", \"m5\"]' is not valid; allowed: "
                                                    "a non-empty list of distinct EC2 GPU families from g4dn, g5"),
        ({"gpu_instance_families": "[]"}, "gpu_instance_families: '[]' is not valid"),
        ({"gpu_capacity_types": '["reserved"]'}, "gpu_capacity_types: '[\"reserved\"]' is not valid; allowed: "
                                                 "a non-empty list of distinct capacity types from spot, on-demand"),
        ({"gpu_limit": "0"}, "gpu_limit: '0' is not valid; allowed: a whole number from 1 to 1024"),
        ({"ami_alias": "al2@latest"}, "ami_alias: 'al2@latest' is not valid; allowed: al2023@vYYYYMMDD"),
        ({"gpu_root_volume_gb": "19"}, "gpu_root_volume_gb: '19' is not valid; allowed: a whole number from 20 to 4000"),
    ],
)
def test_gpu_config_validation(overrides, expected):
    found = problems(**overrides)
    assert any(expected in p for p in found), found


def test_comma_separated_families_are_accepted():
    plan = plan_for("gpu_instance_families=g6e,p5")
    assert requirement(node_pool(plan, "gpu"), "karpenter.k8s.aws/instance-family")["values"] == ["g6e", "p5"]


def test_every_gpu_type_has_the_local_nvme_the_node_pool_requires():
    """The NodePool asks for local NVMe; a priced GPU type without enough would never launch (or its images would
    fill the small root volume): every type in the GPU families must have it."""
    from planning.gpus import GPU_FAMILIES
    from planning.instances import load_instances
    from components.karpenter import MIN_LOCAL_NVME_GB
    types = load_instances().in_families(GPU_FAMILIES)
    assert types
    short = {t.name: t.local_nvme_gb for t in types if t.local_nvme_gb < MIN_LOCAL_NVME_GB}
    assert not short, short


def test_gpu_root_volume_boundaries():
    assert parse(gpu_root_volume_gb="20").gpu.root_volume_gb == 20  # the AMI's root snapshot: the least EC2 accepts
    assert parse(gpu_root_volume_gb="4000").gpu.root_volume_gb == 4000
    assert problems(gpu_root_volume_gb="4001")
