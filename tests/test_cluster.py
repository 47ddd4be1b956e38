"""EKS cluster, core node group and Kubernetes provider as the dev stack would create them."""

from __future__ import annotations

import json

from tests.conftest import attached_to, plan_for
from tools import opaque


def test_cluster_inputs(dev_plan):
    eks = dev_plan.one("eks:index:Cluster")
    i = eks.inputs
    assert i["name"] == "nim-on-eks-dev"
    assert i["version"] == "1.36"
    assert i["authenticationMode"] == "API"
    assert i["createOidcProvider"] is True
    assert i["skipDefaultNodeGroup"] is True
    assert i["enabledClusterLogTypes"] == ["audit", "authenticator"]  # the log group: tests/test_logs.py
    key = dev_plan.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    assert i["encryptionConfigKeyArn"].startswith("arn:aws:kms:us-west-2:")
    assert key.urn in eks.dependencies
    subnets = {s.name: s.id for s in dev_plan.of_type("aws:ec2/subnet:Subnet")}
    assert sorted(i["privateSubnetIds"]) == sorted(v for k, v in subnets.items() if "-private-" in k)
    assert sorted(i["publicSubnetIds"]) == sorted(v for k, v in subnets.items() if "-public-" in k)
    assert i["vpcId"] == dev_plan.one("aws:ec2/vpc:Vpc").id
    # kubectl from the user's machine through the public endpoint; nodes talk to the API inside the VPC
    assert (i["endpointPublicAccess"], i["endpointPrivateAccess"]) == (True, True)


def test_core_node_group(dev_plan):
    ng = dev_plan.one("aws:eks/nodeGroup:NodeGroup")
    i = ng.inputs
    assert i["clusterName"] == "nim-on-eks-dev"
    # Graviton: the smallest type that holds the core's pods (tests/test_lean.py), on the AL2023 ARM AMI, under a
    # name of its own (a new type is a new group: EKS cannot change it in place)
    assert i["nodeGroupName"] == "core-t4g-medium"
    assert i["amiType"] == "AL2023_ARM_64_STANDARD"
    assert i["capacityType"] == "ON_DEMAND"
    assert i["instanceTypes"] == ["t4g.medium"]
    assert i["scalingConfig"] == {"desiredSize": 2, "minSize": 2, "maxSize": 4}
    assert i["labels"] == {"nim-on-eks/node-pool": "core"}
    # only pods that tolerate it (Karpenter, CoreDNS, the CSI controllers, node DaemonSets) land on the core nodes
    assert i["taints"] == [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}]
    private = sorted(s.id for s in dev_plan.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name)
    assert sorted(i["subnetIds"]) == private
    # one node at a time during updates: the core nodes carry Karpenter's two replicas
    assert i["updateConfig"] == {"maxUnavailable": 1}
    lt = dev_plan.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert i["launchTemplate"]["id"] == lt.id
    # the AL2023 root device: encrypted gp3, deleted with its node (no volume outlives `pulumi destroy`)
    assert lt.inputs["blockDeviceMappings"] == [{"deviceName": "/dev/xvda", "ebs": {
        "volumeSize": 30, "volumeType": "gp3", "encrypted": "true", "deleteOnTermination": "true"}}]
    # IMDSv2 only. The hop limit bounds how far a metadata response travels: 1 reaches the node (and host-network
    # pods), 2 a container on it; anything more reaches beyond the node.
    options = lt.inputs["metadataOptions"]
    assert set(options) == {"httpEndpoint", "httpTokens", "httpPutResponseHopLimit"}
    assert (options["httpEndpoint"], options["httpTokens"]) == ("enabled", "required")
    assert options["httpPutResponseHopLimit"] in (1, 2)
    # created after the cluster and the role's policies; on destroy removed before them
    role = dev_plan.one("aws:iam/role:Role", "nim-on-eks-dev-core-node-role")
    attachments = attached_to(dev_plan, role)
    assert {a.inputs["policyArn"].rsplit("/", 1)[1] for a in attachments} == {
        "AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryPullOnly",
        "AmazonSSMManagedInstanceCore"}
    for dep in [dev_plan.one("eks:index:Cluster"), role, *attachments]:
        assert dev_plan.depends_on(ng, dep), dep.name
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": ["ec2.amazonaws.com"]}


def test_core_node_group_size_from_config():
    plan = plan_for("core_instance_type=m6i.2xlarge", "core_node_count=3", "core_node_max=6", "core_disk_gb=200")
    i = plan.one("aws:eks/nodeGroup:NodeGroup").inputs
    assert i["instanceTypes"] == ["m6i.2xlarge"]
    assert (i["amiType"], i["nodeGroupName"]) == ("AL2023_x86_64_STANDARD", "core-m6i-2xlarge")  # x86: its AMI
    assert i["scalingConfig"] == {"desiredSize": 3, "minSize": 3, "maxSize": 6}
    lt = plan.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert lt.inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 200


def test_pod_identity_agent(dev_plan):
    addon = dev_plan.one("aws:eks/addon:Addon", "nim-on-eks-dev-pod-identity-agent")
    assert addon.inputs["addonName"] == "eks-pod-identity-agent"
    assert addon.inputs["clusterName"] == "nim-on-eks-dev"
    assert dev_plan.depends_on(addon, dev_plan.one("eks:index:Cluster"))


def test_every_kubernetes_resource_uses_the_cluster_provider(dev_plan):
    [provider] = dev_plan.of_type("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "[secret]"
    assert dev_plan.depends_on(provider, dev_plan.one("aws:eks/nodeGroup:NodeGroup"))
    # controllers installed through it get AWS credentials from the Pod Identity agent, so it runs first
    assert dev_plan.depends_on(provider, dev_plan.one("aws:eks/addon:Addon", "nim-on-eks-dev-pod-identity-agent"))
    k8s = [r for r in dev_plan.resources if r.type.startswith("kubernetes:")]
    assert k8s
    for r in k8s:
        assert r.provider.startswith(provider.urn + "::"), f"{r.type} {r.name} uses {r.provider or 'the default provider'}"


def test_every_aws_resource_uses_the_explicit_provider_with_default_tags(dev_plan):
    [provider] = dev_plan.of_type("pulumi:providers:aws")
    assert provider.inputs["region"] == "us-west-2"
    assert json.loads(provider.inputs["defaultTags"])["tags"] == {
        "project": "nim-on-eks", "stack": "dev", "nim-on-eks/cluster": "nim-on-eks-dev"}
    for r in dev_plan.resources:
        if r.custom and r.type.startswith("aws:") and r.created_by != opaque.BY_AWS:  # pulumi-eks's children too
            assert r.provider.startswith(provider.urn + "::"), f"{r.type} {r.name}"


def test_outputs(dev_plan):
    out = dev_plan.outputs
    assert out["cluster_name"] == "nim-on-eks-dev"
    assert out["configure_kubectl"] == "aws eks --region us-west-2 update-kubeconfig --name nim-on-eks-dev"
    assert out["kubeconfig"] == "[secret]"
    assert out["vpc_id"] == dev_plan.one("aws:ec2/vpc:Vpc").id


def test_cluster_name_and_version_from_config():
    plan = plan_for("cluster_name=llm-prod", "eks_version=1.34")
    eks = plan.one("eks:index:Cluster")
    assert (eks.inputs["name"], eks.inputs["version"]) == ("llm-prod", "1.34")
    assert plan.outputs["configure_kubectl"].endswith("--name llm-prod")


def test_cluster_admins_get_access_entries(dev_plan):
    assert dev_plan.one("eks:index:Cluster").inputs.get("accessEntries", {}) == {}
    arn = "arn:aws:iam::123456789012:role/platform-admin"
    plan = plan_for(f'cluster_admins=["{arn}"]')
    entry = plan.one("eks:index:Cluster").inputs["accessEntries"]["admin-0"]
    assert entry["principalArn"] == arn
    policy = entry["accessPolicies"]["admin"]
    assert policy["policyArn"].endswith(":cluster-access-policy/AmazonEKSClusterAdminPolicy")
    assert policy["accessScope"] == {"type": "cluster"}


def test_coredns_is_managed_once_the_core_nodes_exist(dev_plan):
    eks = dev_plan.one("eks:index:Cluster")
    assert eks.inputs["corednsAddonOptions"]["enabled"] is False
    coredns = dev_plan.one("aws:eks/addon:Addon", "nim-on-eks-dev-coredns")
    assert coredns.inputs["addonName"] == "coredns"
    assert dev_plan.depends_on(coredns, dev_plan.one("aws:eks/nodeGroup:NodeGroup"))
    [provider] = dev_plan.of_type("pulumi:providers:kubernetes")
    assert dev_plan.depends_on(provider, coredns)


def test_helm_releases_wait_long_enough(dev_plan):
    timeouts = {r.inputs["name"]: r.inputs["timeout"] for r in dev_plan.of_type("kubernetes:helm.sh/v3:Release")}
    assert timeouts["kube-prometheus-stack"] == 900
    assert min(timeouts.values()) >= 600
