"""IAM policy documents as plain data: built by pure functions, linted with parliament in the tests; and how a
document becomes the JSON AWS gets (`to_json`, or `to_json_output` when it holds ARNs of resources being created)."""

from __future__ import annotations

import json
from typing import Any

import pulumi

VERSION = "2012-10-17"

# AWS managed policies, by name (arn:aws:iam::aws:policy/<name>).
MANAGED = {
    "worker": "AmazonEKSWorkerNodePolicy",
    "cni": "AmazonEKS_CNI_Policy",
    "ecr_pull": "AmazonEC2ContainerRegistryPullOnly",
    "ssm": "AmazonSSMManagedInstanceCore",
}

NODE_POLICIES = ("worker", "cni", "ecr_pull", "ssm")


def managed_policy_arn(name: str, partition: str) -> str:
    """`AmazonEKS_CNI_Policy` -> its ARN; service-role policies keep their path (`service-role/...`)."""
    return f"arn:{partition}:iam::aws:policy/{name}"


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def to_json(doc: dict[str, Any]) -> str:
    """Sorted keys: the bytes every stack already has, so no policy shows a diff."""
    return json.dumps(doc, sort_keys=True)


def to_json_output(doc: pulumi.Input[dict[str, Any]]) -> pulumi.Output[str]:
    """`to_json` of a document holding Outputs (an ARN of a resource being created): the same bytes, and the
    policy waits for the resources whose Outputs it holds."""
    return pulumi.Output.json_dumps(doc, sort_keys=True)


def service_trust(*services: str, actions: tuple[str, ...] = ("sts:AssumeRole",)) -> dict[str, Any]:
    """Trust policy letting AWS services (ec2.amazonaws.com, pods.eks.amazonaws.com, ...) assume the role."""
    return document(
        {"Effect": "Allow", "Principal": {"Service": sorted(services)}, "Action": list(actions)}
    )


def pod_identity_trust() -> dict[str, Any]:
    """EKS Pod Identity: the agent assumes the role and tags the session (EKS user guide, pod-id-role)."""
    return service_trust("pods.eks.amazonaws.com", actions=("sts:AssumeRole", "sts:TagSession"))


def irsa_trust(oidc_provider_arn: str, oidc_issuer: str, namespace: str, service_accounts: str) -> dict[str, Any]:
    """IRSA trust for service accounts matching a pattern (`efs-csi-*`) in one namespace."""
    issuer = oidc_issuer.removeprefix("https://")
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": oidc_provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {f"{issuer}:aud": "sts.amazonaws.com"},
                "StringLike": {f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_accounts}"},
            },
        }
    )
