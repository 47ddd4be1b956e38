"""EKS control plane (pulumi-eks), the small core managed node group, Pod Identity agent, CoreDNS, Kubernetes
provider.

The AWS provider comes from the component's opts (pulumi-eks gets it from there too, in its `providers`); the
Kubernetes provider is made here, a child of the cluster, and every later component gets it through its opts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from parts import addons
from planning import iam
from planning.config import CoreSettings, LogSettings
from planning.pools import core_group
from planning.scheduling import ADDON_PLACEMENT, CORE_NODE_LABEL, CORE_TAINT


def control_plane_log_group(cluster_name: str) -> str:
    """The CloudWatch log group EKS writes a cluster's control-plane logs to (EKS user guide, control-plane logs)."""
    return f"/aws/eks/{cluster_name}/cluster"


@dataclass
class ClusterArgs:
    cluster_name: str
    version: str
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    public_subnet_ids: list[pulumi.Input[str]]
    core: CoreSettings  # the core node group
    logs: LogSettings  # control-plane log types (none: no log group) and how long they are kept
    partition: str  # aws, aws-us-gov: every ARN the component writes itself
    admin_arns: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    # The private subnets' way out (NAT, routes, S3 endpoint): the core nodes wait for it, and everything running on
    # them is deleted before it (Network.egress).
    network_egress: list[pulumi.Resource] = field(default_factory=list)


class Cluster(pulumi.ComponentResource):
    """The EKS cluster and everything Kubernetes resources need before they can be created."""

    name: str
    cluster_name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.name = args.cluster_name
        self.version = args.version

        # Envelope encryption of Kubernetes secrets (the NGC key lives in one).
        self.secrets_key = aws.kms.Key(
            f"{name}-secrets",
            description=f"EKS secrets envelope encryption for {args.cluster_name}",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            tags=args.tags,
            opts=child,
        )

        # Control-plane logs go to the log group /aws/eks/<cluster>/cluster. Left to EKS, that group is created by
        # EKS with no retention, outside the stack: it outlives `pulumi destroy` and bills its storage forever.
        # Created here, before the cluster (which depends on it), EKS finds it and writes into it; on destroy the
        # cluster goes first, then the group. CloudWatch Logs encrypts log data at rest anyway; a customer KMS key
        # (even the secrets key above) would need a key policy admitting the logs service, for little gain here.
        self.log_group = (
            aws.cloudwatch.LogGroup(
                f"{name}-control-plane-logs",
                name=control_plane_log_group(args.cluster_name),
                retention_in_days=args.logs.retention_days,
                tags=args.tags,
                opts=child,
            )
            if args.logs.types
            else None
        )

        self.eks = eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.version,
            vpc_id=args.vpc_id,
            private_subnet_ids=args.private_subnet_ids,
            public_subnet_ids=args.public_subnet_ids,
            endpoint_public_access=True,  # kubectl from the user's machine; nodes use the private endpoint
            endpoint_private_access=True,
            authentication_mode=eks.AuthenticationMode.API,
            # the identity running `pulumi up` becomes admin through EKS's bootstrap; these are the others
            access_entries={
                f"admin-{i}": eks.AccessEntryArgs(
                    principal_arn=arn,
                    access_policies={
                        "admin": eks.AccessPolicyAssociationArgs(
                            policy_arn=f"arn:{args.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                            access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                        )
                    },
                )
                for i, arn in enumerate(args.admin_arns)
            },
            create_oidc_provider=True,  # IRSA for add-ons that do not take Pod Identity (EFS CSI)
            skip_default_node_group=True,
            # pulumi-eks can only manage CoreDNS with its default node group; we manage it below, after ours.
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            # NetworkPolicy enforcement (components/netpol.py): pulumi-eks v4.4.0 merges this into its vpc-cni
            # add-on's configurationValues as `enableNetworkPolicy: "true"` (nodejs/eks/addons/cni-addon.ts
            # mergeConfigurationValues), which starts the network policy agent in aws-node (VPC CNI >= 1.14, EKS >=
            # 1.25: EKS user guide "cni-network-policy"). The agent uses eBPF and needs the BPF filesystem, mounted by
            # every EKS AMI from 1.27 (aws/aws-network-policy-agent README); our nodes run AL2023 (kernel 6.1).
            vpc_cni_options=eks.VpcCniOptionsArgs(enable_network_policy=True),
            enabled_cluster_log_types=list(args.logs.types) or None,
            encryption_config_key_arn=self.secrets_key.arn,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self,
                                        depends_on=[self.log_group] if self.log_group else None),
        )
        self.kubeconfig = pulumi.Output.secret(self.eks.kubeconfig_json)
        self.oidc_provider_arn = self.eks.oidc_provider_arn
        self.oidc_issuer = self.eks.oidc_issuer
        # The cluster's name as an Output of the aws.eks.Cluster inside pulumi-eks: every resource that needs the
        # cluster to exist (node group, add-ons, access entries, pod identity) takes this, so the graph orders it
        # after the control plane on `up` and before it on `destroy`; a re-typed string would race it.
        self.cluster_name = self.eks.eks_cluster.name
        # The security group EKS creates with the cluster, shared by the control-plane ENIs and the managed node
        # group (its launch template names no group): all traffic between its members. Karpenter's nodes join it
        # too. Not pulumi-eks's `cluster_security_group_id`: without skip_default_security_groups that is
        # pulumi-eks's own additional group, which only admits 443 from pulumi-eks's (unused) node group
        # (pulumi-eks v4.4.0 cluster.ts; tools/opaque.py models both). Skipping pulumi-eks's groups instead would
        # change vpcConfig on stacks already up.
        self.cluster_security_group_id = self.eks.eks_cluster.vpc_config.cluster_security_group_id

        # Core node group: on-demand AL2023 nodes for what must run before Karpenter can launch a node (Karpenter,
        # CoreDNS, the CSI controllers, node DaemonSets), tainted so nothing else lands there (planning/scheduling.py).
        core = core_group(args.core.instance_type, args.core.node_count, args.core.node_max, args.core.disk_gb)
        self.node_role = aws.iam.Role(
            f"{name}-core-node-role",
            assume_role_policy=iam.to_json(iam.service_trust("ec2.amazonaws.com")),
            description=f"Core node group of {args.cluster_name}",
            tags=args.tags,
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-core-node-{key}",
                role=self.node_role.name,
                policy_arn=iam.managed_policy_arn(iam.MANAGED[key], args.partition),
                opts=child,
            )
            for key in iam.NODE_POLICIES
        ]
        launch_template = aws.ec2.LaunchTemplate(
            f"{name}-core",
            description="Core nodes: encrypted gp3 root volume, IMDSv2 only",
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=args.core.disk_gb, volume_type="gp3", encrypted="true", delete_on_termination="true"
                    ),
                )
            ],
            # Hop limit 2: pods on the host network (CSI node plugins) still reach IMDS through the node.
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=2
            ),
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=args.tags)
                for kind in ("instance", "volume")
            ],
            tags=args.tags,
            opts=child,
        )
        # A new instance type (or architecture) is a new group under a new name: EKS cannot change either in place,
        # so Pulumi creates the new group, then deletes the old one and EKS drains its pods onto the new nodes
        # (planning/pools.py core_node_group_name). The launch template names no image: the AMI type does.
        self.core_node_group = aws.eks.NodeGroup(
            f"{name}-core",
            cluster_name=self.cluster_name,
            node_group_name=core.node_group_name,
            node_role_arn=self.node_role.arn,
            subnet_ids=args.private_subnet_ids,
            ami_type=core.ami_type,
            capacity_type="ON_DEMAND",
            instance_types=[core.instance_type],
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=core.count, min_size=core.count, max_size=core.max
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=launch_template.id, version=launch_template.latest_version.apply(str)
            ),
            labels=CORE_NODE_LABEL,
            taints=[aws.eks.NodeGroupTaintArgs(key=CORE_TAINT["key"], value=CORE_TAINT["value"],
                                               effect="NO_SCHEDULE")],
            tags=args.tags,
            # Destroy removes the node group before its role loses its policies, so nodes drain cleanly.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.eks, *attachments, *args.network_egress],
                ignore_changes=["scalingConfig.desiredSize"],  # let the cluster scale it without drift
            ),
        )

        # Pod Identity agent: Karpenter and other controllers get AWS credentials through it.
        self.pod_identity_agent = addons.eks_addon(
            f"{name}-pod-identity-agent", "eks-pod-identity-agent", cluster_name=self.cluster_name,
            parent=self, depends_on=[self.eks], tags=args.tags,
        )

        # CoreDNS as a managed add-on (it replaces the self-managed one EKS bootstraps), once nodes can run it: created
        # before the nodes exist it would stay DEGRADED and time out. On the core nodes: every pod's DNS, Karpenter's
        # calls to AWS included, must not wait for a node Karpenter has yet to launch.
        self.coredns = addons.eks_addon(
            f"{name}-coredns", "coredns", cluster_name=self.cluster_name, parent=self,
            depends_on=[self.core_node_group], tags=args.tags,
            configuration_values=json.dumps(ADDON_PLACEMENT["coredns"]),
        )

        # Every Kubernetes resource uses this provider. It depends on the core nodes, the Pod Identity agent and
        # CoreDNS, so workloads are created only once they can run, and on destroy they are deleted while nodes still exist.
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.core_node_group, self.pod_identity_agent,
                                                                 self.coredns]),
        )

        self.register_outputs(
            {
                "cluster_name": self.name,
                "kubeconfig": self.kubeconfig,
                "oidc_provider_arn": self.oidc_provider_arn,
                "cluster_security_group_id": self.cluster_security_group_id,
            }
        )
