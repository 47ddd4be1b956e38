"""Storage: the EFS model cache shared by every replica of a model, and encrypted gp3 block storage (EBS CSI).

NIM downloads tens of gigabytes of weights on first start. On a ReadWriteMany EFS volume the first replica
downloads once; every later replica, restart and node replacement reads the cache instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from parts import addons
from planning import iam
from planning.config import EfsSettings
from planning.scheduling import ADDON_PLACEMENT
from planning.workloads import NIM_UID
from components.waiters import EBS_CSI_DRIVER, EFS_CSI_DRIVER, VolumesReleased

EFS_STORAGE_CLASS = "efs"
GP3_STORAGE_CLASS = "gp3"


def ia_transition(days: int) -> str:
    """EFS lifecycle value for a transition to Infrequent Access after `days` (AFTER_1_DAY, AFTER_7_DAYS, ...)."""
    return "AFTER_1_DAY" if days == 1 else f"AFTER_{days}_DAYS"


def efs_policy(file_system_arn: pulumi.Input[str]) -> dict:
    """Clients may mount and write only through a mount target, and only over TLS (the CSI driver's default)."""
    return iam.document(
        {"Sid": "DenyNonTLS", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "*", "Resource": file_system_arn,
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "AllowMountTargetClients", "Effect": "Allow", "Principal": {"AWS": "*"},
         "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite",
                    "elasticfilesystem:ClientRootAccess"],
         "Resource": file_system_arn,
         "Condition": {"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}}},
    )


@dataclass
class StorageArgs:
    cluster_name: str
    eks_cluster_name: pulumi.Input[str]  # the same name as an Output of the cluster: the add-ons wait for it
    partition: str
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    private_subnet_ids: list[pulumi.Input[str]]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    kubeconfig: pulumi.Input[str]  # a secret; the volumes-released waiter lists PersistentVolumes with it on destroy
    # The cluster's Pod Identity agent: both CSI add-ons wait for it (the EBS driver gets its credentials through it).
    pod_identity_agent: aws.eks.Addon
    efs: EfsSettings  # backups, Infrequent Access transition


class Storage(pulumi.ComponentResource):
    """EFS file system + mount targets + EFS CSI add-on + `efs` StorageClass; EBS CSI add-on + default `gp3`;
    `volumes_released`, which every consumer of volumes depends on."""

    file_system: aws.efs.FileSystem
    efs_storage_class: k8s.storage.v1.StorageClass
    gp3_storage_class: k8s.storage.v1.StorageClass
    volumes_released: VolumesReleased

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:Storage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # --- EFS file system: elastic throughput, because a cold start reads a whole model at once and bursting
        # credits of a fresh, nearly empty file system run out within minutes.
        self.file_system = aws.efs.FileSystem(
            f"{name}-efs",
            encrypted=True,
            performance_mode="generalPurpose",
            throughput_mode="elastic",
            # No transition to Infrequent Access by default: IA reads cost per GB and are slower, the opposite of
            # what a cache read on every cold start wants.
            lifecycle_policies=(
                [aws.efs.FileSystemLifecyclePolicyArgs(transition_to_ia=ia_transition(args.efs.ia_after_days))]
                if args.efs.ia_after_days else []
            ),
            tags={"Name": f"{args.cluster_name}-model-cache"},
            opts=child,
        )
        aws.efs.BackupPolicy(
            f"{name}-efs",
            file_system_id=self.file_system.id,
            # The cache can always be downloaded again; backups would only add cost.
            backup_policy=aws.efs.BackupPolicyBackupPolicyArgs(status="ENABLED" if args.efs.backups else "DISABLED"),
            opts=child,
        )
        aws.efs.FileSystemPolicy(
            f"{name}-efs",
            file_system_id=self.file_system.id,
            policy=iam.to_json_output(efs_policy(self.file_system.arn)),
            opts=child,
        )
        # NFS from the whole VPC: Karpenter's nodes use the security groups their EC2NodeClass selects, not the
        # core node group's, so the VPC range is the boundary.
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-efs",
            description=f"NFS to the model cache of {args.cluster_name}",
            vpc_id=args.vpc_id,
            ingress=[aws.ec2.SecurityGroupIngressArgs(
                description="NFS from the VPC", protocol="tcp", from_port=2049, to_port=2049,
                cidr_blocks=[args.vpc_cidr],
            )],
            tags={"Name": f"{args.cluster_name}-efs"},
            opts=child,
        )
        self.mount_targets = [
            aws.efs.MountTarget(
                f"{name}-efs-{i}", file_system_id=self.file_system.id, subnet_id=subnet_id,
                security_groups=[self.security_group.id], opts=child,
            )
            for i, subnet_id in enumerate(args.private_subnet_ids)
        ]

        # --- EFS CSI driver: the add-on documents IRSA (not Pod Identity), for both its service accounts.
        efs_role, efs_attachment = addons.service_role(
            f"{name}-efs-csi",
            trust=pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer).apply(
                lambda v: iam.to_json(iam.irsa_trust(v[0], v[1], "kube-system", "efs-csi-*"))),
            policy_arn=iam.managed_policy_arn("service-role/AmazonEFSCSIDriverPolicy", args.partition),
            description=f"EFS CSI driver of {args.cluster_name}", parent=self,
        )
        self.efs_addon = addons.eks_addon(
            f"{name}-efs-csi", "aws-efs-csi-driver", cluster_name=args.eks_cluster_name, parent=self,
            depends_on=[efs_attachment, args.pod_identity_agent], service_account_role_arn=efs_role.arn,
            configuration_values=json.dumps(ADDON_PLACEMENT["aws-efs-csi-driver"]),  # controller on the core nodes
        )

        # --- EBS CSI driver through Pod Identity (its add-on supports it), for Prometheus and Open WebUI volumes.
        ebs_role, ebs_attachment = addons.service_role(
            f"{name}-ebs-csi", trust=iam.to_json(iam.pod_identity_trust()),
            policy_arn=iam.managed_policy_arn("service-role/AmazonEBSCSIDriverPolicy", args.partition),
            description=f"EBS CSI driver of {args.cluster_name}", parent=self,
        )
        self.ebs_addon = addons.eks_addon(
            f"{name}-ebs-csi", "aws-ebs-csi-driver", cluster_name=args.eks_cluster_name, parent=self,
            depends_on=[ebs_attachment, args.pod_identity_agent],
            pod_identity_associations=[aws.eks.AddonPodIdentityAssociationArgs(
                role_arn=ebs_role.arn, service_account="ebs-csi-controller-sa")],
            configuration_values=json.dumps(ADDON_PLACEMENT["aws-ebs-csi-driver"]),  # controller on the core nodes
        )

        # --- StorageClasses. The EFS one depends on every mount target, so no PVC binds before NFS is reachable in
        # every AZ; PVCs depend on it, so on destroy they are deleted before the mount targets and file system.
        self.efs_storage_class = k8s.storage.v1.StorageClass(
            f"{name}-efs",
            metadata={"name": EFS_STORAGE_CLASS},
            provisioner=EFS_CSI_DRIVER,
            parameters={
                "provisioningMode": "efs-ap",  # one access point (and directory) per PVC
                "fileSystemId": self.file_system.id,
                "directoryPerms": "775",
                # The access point maps every client to NIM's uid/gid, so the non-root NIM pod owns its cache.
                "uid": str(NIM_UID),
                "gid": str(NIM_UID),
                "basePath": "/nim-cache",
                "ensureUniqueDirectory": "true",
            },
            # Delete: the cache is re-downloadable, and a retained access point would outlive the stack.
            reclaim_policy="Delete",
            # Immediate: EFS has a mount target in every AZ, so binding early cannot pin a pod to a wrong zone.
            volume_binding_mode="Immediate",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.mount_targets, self.efs_addon]),
        )
        self.gp3_storage_class = k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata={"name": GP3_STORAGE_CLASS,
                      "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            provisioner=EBS_CSI_DRIVER,
            # the cluster tag on every volume, so a leftover after an interrupted destroy is easy to find
            parameters={"type": "gp3", "encrypted": "true", "fsType": "ext4",
                        "tagSpecification_1": f"nim-on-eks/cluster={args.cluster_name}"},
            reclaim_policy="Delete",
            allow_volume_expansion=True,
            # EBS volumes are zonal: wait for the pod so the volume is made in the pod's zone.
            volume_binding_mode="WaitForFirstConsumer",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.ebs_addon]),
        )

        # --- Destroy: deleting a PVC only starts the release of its volume; each driver's controller then deletes the
        # EBS volume or EFS access point (AWS asks that access points go before the file system) and the PV. This
        # waiter depends on both drivers (add-ons, roles, policy attachments), the StorageClasses and the mount
        # targets, and every consumer of volumes depends on it. So on destroy the consumers go first, then its delete
        # blocks until no PV of either driver is left (components/waiters.py), and only then the add-ons, mount
        # targets, file system, core nodes and cluster. Never rename it: a delete waits for every volume.
        self.volumes_released = VolumesReleased(
            f"{name}-volumes-released",
            cluster_name=args.cluster_name,
            drivers=[EBS_CSI_DRIVER, EFS_CSI_DRIVER],
            kubeconfig=args.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[
                self.efs_addon, efs_role, efs_attachment, self.ebs_addon, ebs_role, ebs_attachment,
                *self.mount_targets, self.efs_storage_class, self.gp3_storage_class,
            ]),
        )

        self.register_outputs({
            "file_system_id": self.file_system.id,
            "efs_storage_class": EFS_STORAGE_CLASS,
            "gp3_storage_class": GP3_STORAGE_CLASS,
        })
