"""EFS model cache and gp3 block storage."""

from __future__ import annotations

import json

import pytest

from components.storage import ia_transition
from tests.conftest import plan_for
from tests.test_config import problems

NAME = "nim-on-eks-dev-storage"


def test_file_system(dev_plan):
    fs = dev_plan.one("aws:efs/fileSystem:FileSystem").inputs
    assert fs["encrypted"] is True
    assert fs["performanceMode"] == "generalPurpose"
    assert fs["throughputMode"] == "elastic"
    assert fs.get("lifecyclePolicies", []) == []
    assert dev_plan.one("aws:efs/backupPolicy:BackupPolicy").inputs["backupPolicy"] == {"status": "DISABLED"}
    policy = json.loads(dev_plan.one("aws:efs/fileSystemPolicy:FileSystemPolicy").inputs["policy"])
    deny = policy["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    allow = policy["Statement"][1]
    assert allow["Condition"] == {"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}}


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
    assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 2049, 2049)
    assert rule["cidrBlocks"] == ["10.0.0.0/16"]  # Karpenter's nodes too, whatever their security groups
    assert sg["vpcId"] == dev_plan.one("aws:ec2/vpc:Vpc").id


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


def test_efs_storage_class(dev_plan):
    sc = dev_plan.one("kubernetes:storage.k8s.io/v1:StorageClass", f"{NAME}-efs")
    i = sc.inputs
    fs = dev_plan.one("aws:efs/fileSystem:FileSystem")
    assert i["metadata"]["name"] == "efs"
    assert i["provisioner"] == "efs.csi.aws.com"
    p = i["parameters"]
    assert p["provisioningMode"] == "efs-ap" and p["fileSystemId"] == fs.id
    assert (p["uid"], p["gid"], p["directoryPerms"]) == ("1000", "1000", "775")  # NIM runs as 1000:1000
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
