"""EFS model cache and gp3 block storage."""

from __future__ import annotations

import json

import pytest

from components.storage import ia_transition
from tests.conftest import plan_for, problems

NAME = "nim-on-eks-dev-storage"


def test_file_system(dev_plan):
    fs = dev_plan.one("aws:efs/fileSystem:FileSystem").inputs
    assert fs["encrypted"] is True
    assert fs["performanceMode"] == "generalPurpose"
    assert fs["throughputMode"] == "elastic"
    assert fs.get("lifecyclePolicies", []) == []
    assert dev_plan.one("aws:efs/backupPolicy:BackupPolicy").inputs["backupPolicy"] == {"status": "DISABLED"}


def test_file_system_policy_is_tls_and_mount_target_only(dev_plan):
    fs = dev_plan.one("aws:efs/fileSystem:FileSystem")
    policy_resource = dev_plan.one("aws:efs/fileSystemPolicy:FileSystemPolicy")
    assert policy_resource.inputs["fileSystemId"] == fs.id
    assert fs.urn in policy_resource.dependencies
    policy = json.loads(policy_resource.inputs["policy"])
    assert policy["Version"] == "2012-10-17"
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert set(statements) == {"DenyNonTLS", "AllowMountTargetClients"}
    fs_arn = f"arn:aws:efs:us-west-2:123456789012:{fs.name}"  # the file system's ARN as tools/mockrun.py makes it
    # anything at all over plain NFS is denied, to everyone (a Deny narrower than "*" would let writes through)
    assert statements["DenyNonTLS"] == {
        "Sid": "DenyNonTLS", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "*", "Resource": fs_arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    # clients may only mount, write and act as root (the CSI driver creates access point directories), and only
    # through a mount target: no file system administration through this policy
    allow = statements["AllowMountTargetClients"]
    assert {k: v for k, v in allow.items() if k != "Action"} == {
        "Sid": "AllowMountTargetClients", "Effect": "Allow", "Principal": {"AWS": "*"}, "Resource": fs_arn,
        "Condition": {"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}}}
    assert sorted(allow["Action"]) == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientRootAccess",
                                       "elasticfilesystem:ClientWrite"]


def test_backups_and_infrequent_access_are_configurable():
    plan = plan_for("efs_backups=true", "efs_ia_after_days=30")
    assert plan.one("aws:efs/backupPolicy:BackupPolicy").inputs["backupPolicy"] == {"status": "ENABLED"}
    assert plan.one("aws:efs/fileSystem:FileSystem").inputs["lifecyclePolicies"] == [{"transitionToIa": "AFTER_30_DAYS"}]


@pytest.mark.parametrize("days, value", [(1, "AFTER_1_DAY"), (7, "AFTER_7_DAYS"), (365, "AFTER_365_DAYS")])
def test_ia_transition(days, value):
    assert ia_transition(days) == value


def test_bad_ia_days():
    assert any("efs_ia_after_days: '5' is not valid; allowed: one of 0, 1, 7" in p for p in problems(efs_ia_after_days="5"))


def test_nfs_from_the_vpc(dev_plan):
    sg = dev_plan.one("aws:ec2/securityGroup:SecurityGroup", f"{NAME}-efs").inputs
    [rule] = sg["ingress"]
    # NFS (TCP 2049) only, from the VPC only: Karpenter's nodes too, whatever their security groups; nothing else
    assert {k: v for k, v in rule.items() if k != "description"} == {
        "protocol": "tcp", "fromPort": 2049, "toPort": 2049, "cidrBlocks": ["10.0.0.0/16"]}
    assert sg.get("egress", []) == []  # a mount target answers NFS; it never opens connections
    assert sg["vpcId"] == dev_plan.one("aws:ec2/vpc:Vpc").id
    other = plan_for("vpc_cidr=10.20.0.0/18").one("aws:ec2/securityGroup:SecurityGroup", f"{NAME}-efs")
    assert [r["cidrBlocks"] for r in other.inputs["ingress"]] == [["10.20.0.0/18"]]


@pytest.mark.parametrize("azs", ["2", "3", "4"])
def test_one_mount_target_per_private_subnet(azs):
    plan = plan_for(f"availability_zones={azs}")
    targets = plan.of_type("aws:efs/mountTarget:MountTarget")
    private = sorted(s.id for s in plan.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name)
    assert len(targets) == len(private) == int(azs)
    assert sorted(t.inputs["subnetId"] for t in targets) == private
    sg = plan.one("aws:ec2/securityGroup:SecurityGroup", f"{NAME}-efs")
    fs = plan.one("aws:efs/fileSystem:FileSystem")
    assert all(t.inputs["securityGroups"] == [sg.id] and t.inputs["fileSystemId"] == fs.id for t in targets)


def test_efs_csi_addon_uses_irsa_for_both_service_accounts(dev_plan):
    addon = dev_plan.one("aws:eks/addon:Addon", f"{NAME}-efs-csi")
    assert addon.inputs["addonName"] == "aws-efs-csi-driver"
    role = dev_plan.one("aws:iam/role:Role", f"{NAME}-efs-csi")
    assert addon.inputs["serviceAccountRoleArn"].startswith(f"arn:aws:iam::123456789012:role/{NAME}-efs-csi")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Principal"]["Federated"].startswith("arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.")
    [(sub_key, sub)] = trust["Condition"]["StringLike"].items()
    assert sub_key.endswith(":sub") and sub == "system:serviceaccount:kube-system:efs-csi-*"
    [(aud_key, aud)] = trust["Condition"]["StringEquals"].items()
    assert aud_key.endswith(":aud") and aud == "sts.amazonaws.com"
    attachment = dev_plan.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{NAME}-efs-csi")
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy"
    assert dev_plan.depends_on(addon, attachment)


def test_ebs_csi_addon_uses_pod_identity(dev_plan):
    addon = dev_plan.one("aws:eks/addon:Addon", f"{NAME}-ebs-csi")
    assert addon.inputs["addonName"] == "aws-ebs-csi-driver"
    [assoc] = addon.inputs["podIdentityAssociations"]
    assert assoc["serviceAccount"] == "ebs-csi-controller-sa"
    role = dev_plan.one("aws:iam/role:Role", f"{NAME}-ebs-csi")
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": ["pods.eks.amazonaws.com"]}
    attachment = dev_plan.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{NAME}-ebs-csi")
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
    assert dev_plan.depends_on(addon, dev_plan.one("aws:eks/addon:Addon", "nim-on-eks-dev-pod-identity-agent"))
    assert dev_plan.depends_on(addon, attachment)  # the driver never starts without its permissions


def test_efs_storage_class(dev_plan):
    sc = dev_plan.one("kubernetes:storage.k8s.io/v1:StorageClass", f"{NAME}-efs")
    i = sc.inputs
    fs = dev_plan.one("aws:efs/fileSystem:FileSystem")
    assert i["metadata"]["name"] == "efs"
    assert i["provisioner"] == "efs.csi.aws.com"
    # dynamic provisioning: one access point per PVC, each in its own directory under one base path, owned by the
    # uid/gid NIM runs as (1000:1000) and writable by its group only
    assert i["parameters"] == {"provisioningMode": "efs-ap", "fileSystemId": fs.id, "directoryPerms": "775",
                               "uid": "1000", "gid": "1000", "basePath": "/nim-cache", "ensureUniqueDirectory": "true"}
    assert (i["reclaimPolicy"], i["volumeBindingMode"]) == ("Delete", "Immediate")
    # no PVC binds before NFS is reachable in every AZ; on destroy PVCs go before the file system
    for target in dev_plan.of_type("aws:efs/mountTarget:MountTarget"):
        assert dev_plan.depends_on(sc, target)
    assert dev_plan.depends_on(sc, dev_plan.one("aws:eks/addon:Addon", f"{NAME}-efs-csi"))


def test_gp3_default_storage_class(dev_plan):
    i = dev_plan.one("kubernetes:storage.k8s.io/v1:StorageClass", f"{NAME}-gp3").inputs
    assert i["metadata"] == {"name": "gp3", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}
    assert i["provisioner"] == "ebs.csi.aws.com"
    assert i["parameters"] == {"type": "gp3", "encrypted": "true", "fsType": "ext4",
                               "tagSpecification_1": "nim-on-eks/cluster=nim-on-eks-dev"}
    assert i["volumeBindingMode"] == "WaitForFirstConsumer"
    assert i["allowVolumeExpansion"] is True


def test_file_system_output(dev_plan):
    assert dev_plan.outputs["model_cache_file_system_id"] == dev_plan.one("aws:efs/fileSystem:FileSystem").id
