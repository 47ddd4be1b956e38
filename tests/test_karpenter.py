"""Karpenter GPU capacity: controller, IAM, interruption handling, node classes and pools, device plugin."""

from __future__ import annotations

import json

import pytest

from components.karpenter import controller_policies
from tests.conftest import plan_for
from tests.test_config import problems

P5 = ('gpu_instance_families=["p4de","p5"]', 'gpu_capacity_types=["on-demand"]', "gpu_limit=32")
NAME = "nim-on-eks-dev-karpenter"


def docs(plan, type_="aws:iam/policy:Policy"):
    return {r.name.removeprefix(NAME + "-controller-"): json.loads(r.inputs["policy"]) for r in plan.of_type(type_)
            if r.name.startswith(NAME)}


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
    assoc = dev_plan.one("aws:eks/podIdentityAssociation:PodIdentityAssociation")
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


def test_controller_policies_are_scoped(dev_plan):
    policies = docs(dev_plan)
    assert set(policies) == {"node-lifecycle", "iam-integration", "eks-integration", "interruption", "zonal-shift",
                             "resource-discovery"}
    unconditioned_star = set()
    for doc in policies.values():
        for s in doc["Statement"]:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            assert all("*" not in a for a in actions), s  # no wildcard actions at all
            if s["Resource"] == "*" and "Condition" not in s:
                unconditioned_star.update(actions)
    # only read calls that have no resource-level permissions are granted on everything
    assert unconditioned_star == {"pricing:GetProducts", "iam:ListInstanceProfiles"}

    lifecycle = {s["Sid"]: s for s in policies["node-lifecycle"]["Statement"]}
    assert lifecycle["AllowScopedDeletion"]["Condition"]["StringEquals"] == {
        "aws:ResourceTag/kubernetes.io/cluster/nim-on-eks-dev": "owned"}
    assert lifecycle["AllowScopedEC2InstanceActionsWithTags"]["Condition"]["StringLike"] == {
        "aws:RequestTag/karpenter.sh/nodepool": "*"}
    node_role = dev_plan.one("aws:iam/role:Role", f"{NAME}-node-role")
    [passrole] = policies["iam-integration"]["Statement"][:1]
    assert passrole["Action"] == ["iam:PassRole"]
    assert passrole["Resource"].startswith("arn:aws:iam::123456789012:role/")
    assert passrole["Resource"] != "*"
    assert policies["eks-integration"]["Statement"][0]["Resource"] == \
        "arn:aws:eks:us-west-2:123456789012:cluster/nim-on-eks-dev"
    queue = dev_plan.one("aws:sqs/queue:Queue")
    assert policies["interruption"]["Statement"][0]["Resource"] == \
        "arn:aws:sqs:us-west-2:123456789012:nim-on-eks-dev-karpenter"
    discovery = {s["Sid"]: s for s in policies["resource-discovery"]["Statement"]}
    assert discovery["AllowRegionalReadActions"]["Condition"] == {"StringEquals": {"aws:RequestedRegion": "us-west-2"}}
    assert discovery["AllowSSMReadActions"]["Action"] == ["ssm:GetParameter"]
    assert node_role.urn and queue.urn


@pytest.mark.parametrize("partition", ["aws", "aws-us-gov"])
def test_policy_builder_uses_partition_and_account(partition):
    policies = controller_policies(partition, "us-east-1", "111122223333", "c1", "arn:x:role/n", "arn:x:sqs:q")
    text = json.dumps(policies)
    assert f"arn:{partition}:ec2:us-east-1:*:instance/*" in text
    assert f"arn:{partition}:iam::111122223333:instance-profile/*" in text
    assert "arn:x:role/n" in text and "arn:x:sqs:q" in text


def test_node_role_and_access_entry(dev_plan):
    role = dev_plan.one("aws:iam/role:Role", f"{NAME}-node-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": ["ec2.amazonaws.com"]}
    attached = {a.inputs["policyArn"].rsplit("/", 1)[-1] for a in dev_plan.of_type(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment") if a.name.startswith(f"{NAME}-node-")}
    assert attached == {"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryPullOnly",
                        "AmazonSSMManagedInstanceCore"}
    entry = dev_plan.one("aws:eks/accessEntry:AccessEntry")
    assert entry.inputs["type"] == "EC2_LINUX"
    assert entry.inputs["clusterName"] == "nim-on-eks-dev"
    assert role.urn in entry.dependencies


def test_discovery_tags(dev_plan):
    tag = dev_plan.one("aws:ec2/tag:Tag")
    eks = dev_plan.one("eks:index:Cluster")
    assert (tag.inputs["key"], tag.inputs["value"]) == ("karpenter.sh/discovery", "nim-on-eks-dev")
    assert tag.inputs["resourceId"].startswith("sg-0c1u5t3r") and eks.urn in tag.dependencies
    private = [s for s in dev_plan.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name]
    assert all(s.inputs["tags"]["karpenter.sh/discovery"] == "nim-on-eks-dev" for s in private)


def test_interruption_queue_policy_and_rules(dev_plan):
    queue = dev_plan.one("aws:sqs/queue:Queue")
    assert queue.inputs["name"] == "nim-on-eks-dev-karpenter"
    assert queue.inputs["messageRetentionSeconds"] == 300
    assert queue.inputs["sqsManagedSseEnabled"] is True
    policy = json.loads(dev_plan.one("aws:sqs/queuePolicy:QueuePolicy").inputs["policy"])
    allow, deny = policy["Statement"]
    assert allow["Principal"] == {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}
    assert allow["Action"] == "sqs:SendMessage"
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    patterns = {json.loads(r.inputs["eventPattern"])["detail-type"][0]: json.loads(r.inputs["eventPattern"])["source"]
                for r in dev_plan.of_type("aws:cloudwatch/eventRule:EventRule")}
    assert patterns == {
        "AWS Health Event": ["aws.health"],
        "EC2 Spot Instance Interruption Warning": ["aws.ec2"],
        "EC2 Instance Rebalance Recommendation": ["aws.ec2"],
        "EC2 Instance State-change Notification": ["aws.ec2"],
        "EC2 Capacity Reservation Instance Interruption Warning": ["aws.ec2"],
    }
    targets = dev_plan.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert len(targets) == 5
    assert {t.inputs["arn"] for t in targets} == {"arn:aws:sqs:us-west-2:123456789012:nim-on-eks-dev-karpenter"}


def node_pool(plan, name):
    return plan.one("kubernetes:karpenter.sh/v1:NodePool", f"{NAME}-{name}-pool").inputs


def requirement(pool, key):
    [req] = [r for r in pool["spec"]["template"]["spec"]["requirements"] if r["key"] == key]
    return req


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
    assert spec["template"]["spec"]["expireAfter"] == "720h"
    assert spec["template"]["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                        "name": "gpu"}


def test_gpu_node_pool_for_p5_on_demand():
    pool = node_pool(plan_for(*P5), "gpu")
    assert requirement(pool, "karpenter.k8s.aws/instance-family")["values"] == ["p4de", "p5"]
    assert requirement(pool, "karpenter.sh/capacity-type")["values"] == ["on-demand"]
    assert pool["spec"]["limits"] == {"nvidia.com/gpu": "32"}
    assert pool["spec"]["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]


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
    assert bdm["ebs"] == {"volumeSize": "200Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True}
    assert nc["instanceStorePolicy"] == "RAID0"
    assert nc["metadataOptions"]["httpTokens"] == "required"
    plan = plan_for("ami_alias=al2023@v20260101", "gpu_root_volume_gb=500")
    nc = plan.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", f"{NAME}-gpu-class").inputs["spec"]
    assert nc["amiSelectorTerms"] == [{"alias": "al2023@v20260101"}]
    assert nc["blockDeviceMappings"][0]["ebs"]["volumeSize"] == "500Gi"


def test_cpu_pool_for_general_workloads(dev_plan):
    pool = node_pool(dev_plan, "cpu")
    assert pool["spec"]["template"]["metadata"]["labels"] == {"nim-on-eks/node-pool": "cpu"}
    assert "taints" not in pool["spec"]["template"]["spec"]
    assert pool["spec"]["limits"] == {"cpu": "64"}


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
    # the controller is deleted before its IAM, its queue, the node group and the cluster
    for other in [dev_plan.one("aws:eks/podIdentityAssociation:PodIdentityAssociation"),
                  dev_plan.one("aws:sqs/queuePolicy:QueuePolicy"),
                  dev_plan.one("aws:eks/accessEntry:AccessEntry"),
                  dev_plan.one("aws:eks/nodeGroup:NodeGroup"),
                  dev_plan.one("eks:index:Cluster"),
                  *[a for a in dev_plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                    if a.name.startswith(NAME)]]:
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
        ({"gpu_root_volume_gb": "20"}, "gpu_root_volume_gb: '20' is not valid"),
    ],
)
def test_gpu_config_validation(overrides, expected):
    found = problems(**overrides)
    assert any(expected in p for p in found), found


def test_comma_separated_families_are_accepted():
    plan = plan_for("gpu_instance_families=g6e,p5")
    assert requirement(node_pool(plan, "gpu"), "karpenter.k8s.aws/instance-family")["values"] == ["g6e", "p5"]
