"""Every pinned version in one visible place: Kubernetes, add-ons, charts, images, AMI aliases.

Each pin says where it was checked. Change a pin here and nowhere else.
"""

# Kubernetes versions this product supports: Karpenter 1.14 supports up to 1.36 (Karpenter compatibility
# matrix, aws/karpenter-provider-aws website/content/en/v1.14/upgrading/compatibility.md), and the offline
# schema gate (kubernetes-validate 1.37.0) ships schemas for each. 1.36 is the newest in EKS standard support
# and the one Karpenter's v1.14 getting-started guide uses (K8S_VERSION="1.36").
SUPPORTED_EKS_VERSIONS = ("1.33", "1.34", "1.35", "1.36")
DEFAULT_EKS_VERSION = "1.36"

# Core managed node group AMI: EKS-optimized Amazon Linux 2023 (AL2 AMIs end after Kubernetes 1.32).
CORE_AMI_TYPE = "AL2023_x86_64_STANDARD"

# EKS managed add-ons. None means "the default version EKS publishes for the cluster's Kubernetes version":
# add-on builds are per Kubernetes minor, so a single literal would be wrong for three of the four versions
# above. `aws eks describe-addon-versions --addon-name NAME --kubernetes-version 1.36` lists them.
ADDON_VERSIONS: dict[str, str | None] = {
    "eks-pod-identity-agent": None,
}
