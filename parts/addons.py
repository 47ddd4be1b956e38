"""EKS managed add-ons and the IAM roles their controllers use."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from planning import versions


def eks_addon(resource_name: str, addon_name: str, *, cluster_name: pulumi.Input[str], parent: pulumi.Resource,
              depends_on: list[pulumi.Resource], **extra: Any) -> aws.eks.Addon:
    """An EKS add-on at its pinned version (versions.ADDON_VERSIONS), taking over any self-managed copy."""
    return aws.eks.Addon(
        resource_name,
        cluster_name=cluster_name,
        addon_name=addon_name,
        addon_version=versions.ADDON_VERSIONS[addon_name],
        resolve_conflicts_on_create="OVERWRITE",
        resolve_conflicts_on_update="OVERWRITE",
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on),
        **extra,
    )


def service_role(resource_name: str, *, trust: pulumi.Input[str], policy_arn: str, description: str,
                 parent: pulumi.Resource) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment]:
    """A role a controller assumes (trust: a JSON policy document) with one managed policy attached."""
    opts = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(resource_name, assume_role_policy=trust, description=description, opts=opts)
    attachment = aws.iam.RolePolicyAttachment(resource_name, role=role.name, policy_arn=policy_arn, opts=opts)
    return role, attachment
