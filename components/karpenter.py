"""Karpenter v1: controller (Helm), its IAM through EKS Pod Identity, interruption queue and rules, node role,
the EC2NodeClasses and NodePools that launch GPU nodes (for the models) and CPU nodes (for every other pod that is
not the core's).

IAM statements restate the controller policies of Karpenter's getting-started CloudFormation for v1.14
(aws/karpenter-provider-aws @ 1d927085, website/content/en/v1.14/getting-started/getting-started-with-karpenter/
cloudformation.yaml): node lifecycle scoped by cluster and nodepool tags, IAM integration scoped to the node role,
EKS describe, interruption queue, zonal shift, and regional resource discovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from parts import helm
from planning import iam, versions
from planning.config import CpuSettings, GpuSettings
from planning.pools import CPU_ROOT_VOLUME_GB, CpuPool, cpu_pool
from planning.scheduling import (CORE_NODE_LABEL, CORE_TOLERATION, CPU_NODE_LABELS, GPU_NODE_LABELS,
                                 GPU_NODE_SELECTOR, GPU_TAINT, GPU_TOLERATION)
from planning.workloads import KARPENTER_CONTROLLER

SERVICE_ACCOUNT = "karpenter"
# GPU nodes keep images and the kubelet on their local NVMe (RAID0), so the root volume holds only the OS; an
# instance type without enough local NVMe would put tens of GB of NIM images on that small root volume. Every GPU
# type we price has at least 125 GiB (data/instance_types.yaml); the requirement keeps it so for any type.
MIN_LOCAL_NVME_GB = 100  # the label is EC2's InstanceStorageInfo.TotalSizeInGB (decimal GB; instancetype/types.go)

# EventBridge events Karpenter acts on (same CloudFormation template): source, detail-type.
INTERRUPTION_EVENTS = {
    "health": ("aws.health", "AWS Health Event"),
    "spot-interruption": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "capacity-reservation": ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
}


def controller_policies(
    partition: str, region: str, account: str, cluster: str, node_role_arn: pulumi.Input[str],
    queue_arn: pulumi.Input[str],
) -> dict[str, dict[str, Any]]:
    """The controller's permissions, one document per upstream managed policy."""
    ec2 = f"arn:{partition}:ec2:{region}"
    owned = {f"aws:ResourceTag/kubernetes.io/cluster/{cluster}": "owned"}
    request_owned = {
        f"aws:RequestTag/kubernetes.io/cluster/{cluster}": "owned",
        "aws:RequestTag/eks:eks-cluster-name": cluster,
    }
    tagged_resources = [f"{ec2}:*:{kind}/*" for kind in
                        ("fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request")]
    profile = f"arn:{partition}:iam::{account}:instance-profile/*"
    cluster_arn = f"arn:{partition}:eks:{region}:{account}:cluster/{cluster}"

    def allow(sid: str, actions: list[str], resource: Any, condition: dict | None = None) -> dict[str, Any]:
        statement = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}
        if condition:
            statement["Condition"] = condition
        return statement

    return {
        "node-lifecycle": iam.document(
            allow("AllowScopedEC2InstanceAccessActions", ["ec2:RunInstances", "ec2:CreateFleet"],
                  [f"{ec2}::image/*", f"{ec2}::snapshot/*", f"{ec2}:*:security-group/*", f"{ec2}:*:subnet/*",
                   f"{ec2}:*:capacity-reservation/*", f"{ec2}:*:placement-group/*"]),
            allow("AllowScopedEC2LaunchTemplateAccessActions", ["ec2:RunInstances", "ec2:CreateFleet"],
                  f"{ec2}:*:launch-template/*",
                  {"StringEquals": owned, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}}),
            allow("AllowScopedEC2InstanceActionsWithTags",
                  ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"], tagged_resources,
                  {"StringEquals": request_owned, "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}}),
            allow("AllowScopedResourceCreationTagging", ["ec2:CreateTags"], tagged_resources,
                  {"StringEquals": {**request_owned,
                                    "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]},
                   "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}}),
            allow("AllowScopedResourceTagging", ["ec2:CreateTags"], f"{ec2}:*:instance/*",
                  {"StringEquals": owned, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                   "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": cluster},
                   "ForAllValues:StringEquals": {
                       "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]}}),
            allow("AllowScopedDeletion", ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
                  [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"],
                  {"StringEquals": owned, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}}),
        ),
        "iam-integration": iam.document(
            allow("AllowPassingInstanceRole", ["iam:PassRole"], node_role_arn,
                  {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}}),
            allow("AllowScopedInstanceProfileCreationActions", ["iam:CreateInstanceProfile"], profile,
                  {"StringEquals": {**request_owned, "aws:RequestTag/topology.kubernetes.io/region": region},
                   "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}}),
            allow("AllowScopedInstanceProfileTagActions", ["iam:TagInstanceProfile"], profile,
                  {"StringEquals": {**owned, "aws:ResourceTag/topology.kubernetes.io/region": region,
                                    **request_owned, "aws:RequestTag/topology.kubernetes.io/region": region},
                   "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                                  "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}}),
            allow("AllowScopedInstanceProfileActions",
                  ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"],
                  profile,
                  {"StringEquals": {**owned, "aws:ResourceTag/topology.kubernetes.io/region": region},
                   "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"}}),
        ),
        "eks-integration": iam.document(
            allow("AllowAPIServerEndpointDiscovery", ["eks:DescribeCluster"], cluster_arn),
        ),
        "interruption": iam.document(
            allow("AllowInterruptionQueueActions", ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
                  queue_arn),
        ),
        "zonal-shift": iam.document(
            allow("AllowZonalShiftStatusReadOnly", ["arc-zonal-shift:GetManagedResource"], "*",
                  {"StringEquals": {"arc-zonal-shift:ResourceIdentifier": cluster_arn}}),
        ),
        "resource-discovery": iam.document(
            # Describe* calls have no resource-level permissions; they are limited to this region instead.
            allow("AllowRegionalReadActions",
                  ["ec2:DescribeCapacityReservations", "ec2:DescribeImages", "ec2:DescribeInstances",
                   "ec2:DescribeInstanceStatus", "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes",
                   "ec2:DescribeLaunchTemplates", "ec2:DescribePlacementGroups", "ec2:DescribeSecurityGroups",
                   "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets"],
                  "*", {"StringEquals": {"aws:RequestedRegion": region}}),
            allow("AllowSSMReadActions", ["ssm:GetParameter"], f"arn:{partition}:ssm:{region}::parameter/aws/service/*"),
            allow("AllowPricingReadActions", ["pricing:GetProducts"], "*"),
            allow("AllowUnscopedInstanceProfileListAction", ["iam:ListInstanceProfiles"], "*"),
            allow("AllowInstanceProfileReadActions", ["iam:GetInstanceProfile"], profile),
        ),
    }


def queue_policy(queue_arn: pulumi.Input[str]) -> dict[str, Any]:
    """EventBridge (and SQS) may send; nothing may use the queue without TLS."""
    return iam.document(
        {"Sid": "AllowEventBridge", "Effect": "Allow",
         "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
         "Action": "sqs:SendMessage", "Resource": queue_arn},
        {"Sid": "DenyHTTP", "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": queue_arn,
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    )


def gpu_requirements(families: tuple[str, ...], capacity_types: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": list(families)},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(capacity_types)},
        {"key": "karpenter.k8s.aws/instance-gpu-manufacturer", "operator": "In", "values": ["nvidia"]},
        {"key": "karpenter.k8s.aws/instance-local-nvme", "operator": "Gt", "values": [str(MIN_LOCAL_NVME_GB - 1)]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    ]


def cpu_requirements(pool: CpuPool) -> list[dict[str, Any]]:
    """The CPU NodePool's instances: the configured families (whose architectures Karpenter then chooses between
    per pod: a multi-arch pod takes the cheapest, an amd64-only one an x86 family) and capacity types."""
    return [
        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": list(pool.families)},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(pool.capacity_types)},
        {"key": "kubernetes.io/arch", "operator": "In", "values": list(pool.arches)},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    ]


@dataclass
class KarpenterArgs:
    cluster_name: str
    eks_cluster_name: pulumi.Input[str]  # the same name as an Output of the cluster: what needs the cluster waits
    region: str
    account_id: str
    partition: str
    cluster_security_group_id: pulumi.Input[str]  # the EKS-created group of the control plane and core nodes
    gpu: GpuSettings  # what the GPU NodePool may launch; its AMI alias is the CPU NodePool's too
    cpu: CpuSettings  # what the CPU NodePool may launch
    # The cluster's Pod Identity agent: the controller's association waits for it, so Karpenter starts with credentials.
    pod_identity_agent: aws.eks.Addon
    tags: dict[str, str] = field(default_factory=dict)
    image_digests: dict[str, str] = field(default_factory=dict)  # config image_digests: the controller's digest


class Karpenter(pulumi.ComponentResource):
    """Karpenter controller plus the GPU and CPU node classes and pools it launches nodes from."""

    node_role: aws.iam.Role
    queue: aws.sqs.Queue
    release: k8s.helm.v3.Release
    gpu_node_pool: k8s.apiextensions.CustomResource
    cpu_node_pool: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:Karpenter", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster = args.cluster_name

        # --- nodes: role, cluster access, discovery tag on the cluster security group
        self.node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=iam.to_json(iam.service_trust("ec2.amazonaws.com")),
            description=f"Nodes Karpenter launches for {cluster}",
            opts=child,
        )
        node_attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{key}", role=self.node_role.name,
                policy_arn=iam.managed_policy_arn(iam.MANAGED[key], args.partition), opts=child,
            )
            for key in iam.NODE_POLICIES
        ]
        # Authentication mode API: nodes join through an access entry, not aws-auth.
        access_entry = aws.eks.AccessEntry(
            f"{name}-node", cluster_name=args.eks_cluster_name, principal_arn=self.node_role.arn, type="EC2_LINUX",
            opts=child,
        )
        # Karpenter's nodes join the cluster security group EKS created (control plane and core nodes are in it, and
        # it admits all traffic between its members), found by this tag.
        sg_tag = aws.ec2.Tag(
            f"{name}-sg-discovery", resource_id=args.cluster_security_group_id,
            key="karpenter.sh/discovery", value=cluster, opts=child,
        )

        # --- interruption handling: spot warnings, rebalance, health and state changes reach the controller
        self.queue = aws.sqs.Queue(
            f"{name}-interruption",
            name=f"{cluster}-karpenter",
            message_retention_seconds=300,
            sqs_managed_sse_enabled=True,
            opts=child,
        )
        queue_policy_resource = aws.sqs.QueuePolicy(
            f"{name}-interruption", queue_url=self.queue.url,
            policy=iam.to_json_output(queue_policy(self.queue.arn)), opts=child,
        )
        rules = []
        for key, (source, detail_type) in INTERRUPTION_EVENTS.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{key}",
                description=f"Karpenter interruption handling for {cluster}: {detail_type}",
                event_pattern=pulumi.Output.json_dumps({"source": [source], "detail-type": [detail_type]}),
                opts=child,
            )
            rules.append(aws.cloudwatch.EventTarget(
                f"{name}-{key}", rule=rule.name, arn=self.queue.arn, target_id="KarpenterInterruptionQueueTarget",
                opts=child,
            ))

        # --- controller IAM through EKS Pod Identity
        self.controller_role = aws.iam.Role(
            f"{name}-controller-role",
            assume_role_policy=iam.to_json(iam.pod_identity_trust()),
            description=f"Karpenter controller of {cluster}",
            opts=child,
        )
        documents = controller_policies(args.partition, args.region, args.account_id, cluster,
                                        self.node_role.arn, self.queue.arn)
        controller_attachments = []
        for key, document in documents.items():
            policy = aws.iam.Policy(
                f"{name}-controller-{key}", description=f"Karpenter controller ({key}) for {cluster}",
                policy=iam.to_json_output(document),
                # Only two documents name the node role or the queue, but every policy has always been created after
                # both and deleted before them (stacks already up record that order): kept, not left to chance.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.node_role, self.queue]),
            )
            controller_attachments.append(aws.iam.RolePolicyAttachment(
                f"{name}-controller-{key}", role=self.controller_role.name, policy_arn=policy.arn, opts=child,
            ))
        pod_identity = aws.eks.PodIdentityAssociation(
            f"{name}-controller", cluster_name=args.eks_cluster_name, namespace=versions.KARPENTER_NAMESPACE,
            service_account=SERVICE_ACCOUNT, role_arn=self.controller_role.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.pod_identity_agent]),
        )

        # --- controller: two replicas on the core node group, never on nodes it launched itself
        # The IAM it acts with, the queue it reads and the node access entry exist first; on destroy the controller
        # outlives them all, so it can still terminate the nodes it launched.
        self.release = helm.release(
            f"{name}-controller", versions.KARPENTER, name="karpenter", namespace=versions.KARPENTER_NAMESPACE,
            values={
                "settings": {"clusterName": cluster, "interruptionQueue": self.queue.name},
                "serviceAccount": {"name": SERVICE_ACCOUNT},
                "replicas": 2,
                "nodeSelector": {"kubernetes.io/os": "linux", **CORE_NODE_LABEL},
                # the chart's default, restated: the core nodes' taint (planning/scheduling.py) keeps all else off
                "tolerations": [CORE_TOLERATION],
                "controller": {
                    "resources": {"requests": KARPENTER_CONTROLLER.as_k8s(),
                                  "limits": {"memory": KARPENTER_CONTROLLER.as_k8s()["memory"]}},
                },
            },
            parent=self,
            depends_on=[pod_identity, queue_policy_resource, *controller_attachments, *rules, access_entry,
                        *node_attachments, sg_tag],
            image_digests=args.image_digests,
        )

        # --- node classes and pools: created after the controller (its CRDs), deleted while it still runs
        after_controller = pulumi.ResourceOptions(parent=self, depends_on=[self.release])
        discovery = [{"tags": {"karpenter.sh/discovery": cluster}}]

        def node_class(key: str, root_gib: int, **extra: Any) -> k8s.apiextensions.CustomResource:
            return k8s.apiextensions.CustomResource(
                f"{name}-{key}-class",
                api_version="karpenter.k8s.aws/v1",
                kind="EC2NodeClass",
                metadata={"name": key},
                spec={
                    "amiSelectorTerms": [{"alias": args.gpu.ami_alias}],
                    "role": self.node_role.name,
                    "subnetSelectorTerms": discovery,
                    "securityGroupSelectorTerms": discovery,
                    "blockDeviceMappings": [{
                        "deviceName": "/dev/xvda",
                        "rootVolume": True,
                        "ebs": {"volumeSize": f"{root_gib}Gi", "volumeType": "gp3", "encrypted": True,
                                "deleteOnTermination": True},
                    }],
                    "metadataOptions": {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled",
                                        "httpPutResponseHopLimit": 1, "httpTokens": "required"},
                    "tags": {**args.tags, "Name": f"{cluster}-{key}"},
                    **extra,
                },
                opts=after_controller,
            )

        # Local NVMe (every GPU type allowed has it: MIN_LOCAL_NVME_GB) holds images, containerd and the kubelet (the
        # AMI's setup-local-disks bind-mounts them onto the RAID0 array): fast, already paid for, and it leaves the
        # root volume only the OS (the AL2023 AMI's 20 GiB snapshot) and system logs.
        self.gpu_node_class = node_class("gpu", args.gpu.root_volume_gb, instanceStorePolicy="RAID0")
        self.cpu_node_class = node_class("cpu", CPU_ROOT_VOLUME_GB)

        def node_pool(key: str, node_class: k8s.apiextensions.CustomResource, labels: dict[str, str],
                      requirements: list[dict[str, Any]], disruption: dict[str, Any], limits: dict[str, str],
                      **template_spec: Any) -> k8s.apiextensions.CustomResource:
            return k8s.apiextensions.CustomResource(
                f"{name}-{key}-pool",
                api_version="karpenter.sh/v1",
                kind="NodePool",
                metadata={"name": key},
                spec={
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": key},
                            "requirements": requirements,
                            # Never: expiry is forceful in Karpenter v1 (no disruption budget, no wait for a
                            # replacement; website/content/en/v1.14/concepts/disruption.md), and nodes launched together
                            # would expire together, taking single-replica models down every 30 days. The AMI is
                            # pinned, so nothing new arrives by expiry; a new ami_alias replaces nodes through drift,
                            # which respects the budgets.
                            "expireAfter": "Never",
                            **template_spec,
                        },
                    },
                    "disruption": disruption,
                    "limits": limits,
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release, node_class]),
            )

        self.gpu_node_pool = node_pool(
            "gpu", self.gpu_node_class, GPU_NODE_LABELS,
            gpu_requirements(args.gpu.instance_families, args.gpu.capacity_types),
            # Only empty GPU nodes are consolidated: a serving model is never evicted just to repack it.
            {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m", "budgets": [{"nodes": "1"}]},
            {"nvidia.com/gpu": str(args.gpu.limit)},
            taints=[GPU_TAINT],
            # A drain blocked by a PodDisruptionBudget ends after this: nodes never stay forever.
            terminationGracePeriod="2h",
        )
        # Every pod that needs no GPU and is not the core's (planning/scheduling.py CPU_POOL_AFFINITY): spot first,
        # repacked onto fewer or cheaper nodes when underutilized, one node at a time.
        pool = cpu_pool(args.cpu.instance_families, args.cpu.capacity_types, args.cpu.limit)
        self.cpu_node_pool = node_pool(
            "cpu", self.cpu_node_class, CPU_NODE_LABELS, cpu_requirements(pool),
            {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": pool.consolidate_after,
             "budgets": [{"nodes": "1"}]},
            {"cpu": str(pool.limit_vcpu)},
        )

        # --- NVIDIA device plugin: without it GPU nodes never advertise nvidia.com/gpu. Only the GPU taint is
        # tolerated (the chart's default also tolerates the core's, which only the core's own pods may).
        self.device_plugin = helm.release(
            f"{name}-nvidia-device-plugin", versions.NVIDIA_DEVICE_PLUGIN, name="nvidia-device-plugin",
            namespace="kube-system",
            values={
                "nodeSelector": GPU_NODE_SELECTOR,
                "tolerations": [GPU_TOLERATION],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
            },
            parent=self,
            depends_on=[self.gpu_node_pool],  # on destroy gone before the pool it runs on, like all its pods
        )

        self.register_outputs({
            "node_role_name": self.node_role.name,
            "interruption_queue": self.queue.name,
            "controller_role_arn": self.controller_role.arn,
        })
