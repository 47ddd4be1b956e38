"""Every pinned version in one visible place: Kubernetes, add-ons, charts, images, AMI aliases.

Each pin says where it was checked. Change a pin here and nowhere else.
"""

# Kubernetes versions this product supports: Karpenter 1.14 supports up to 1.36 (Karpenter compatibility
# matrix, aws/karpenter-provider-aws website/content/en/v1.14/upgrading/compatibility.md), and the offline
# schema gate (kubernetes-validate 1.37.0) ships schemas for each. 1.36 is the newest in EKS standard support
# and the one Karpenter's v1.14 getting-started guide uses (K8S_VERSION="1.36").
SUPPORTED_EKS_VERSIONS = ("1.33", "1.34", "1.35", "1.36")
DEFAULT_EKS_VERSION = "1.36"
# EKS gives each version 14 months of standard support from its release, then extended support at 6x the control
# plane price (EKS user guide, Kubernetes version lifecycle). Year-month standard support ends, for the versions
# whose end is near: 1.33 (released 2025-05) and 1.34 (2025-10).
EKS_STANDARD_SUPPORT_ENDS = {"1.33": "2026-07", "1.34": "2026-12"}

# Core managed node group AMI, by the architecture of the core instance type (data/instance_types.yaml):
# EKS-optimized Amazon Linux 2023 (AL2 AMIs end after Kubernetes 1.32). Values of the EKS API's AMITypes enum
# (botocore 1.44.8, eks/2017-11-01/service-2.json; mind the case, ARM but x86). AL2023 ARM runs every Graviton2 or
# later type, T4g included, not A1 (EKS user guide, nodes/choosing-instance-type.adoc @ 1096be54).
CORE_AMI_TYPES = {"amd64": "AL2023_x86_64_STANDARD", "arm64": "AL2023_ARM_64_STANDARD"}

# EKS managed add-ons. None means "the default version EKS publishes for the cluster's Kubernetes version":
# add-on builds are per Kubernetes minor, so a single literal would be wrong for three of the four versions
# above. `aws eks describe-addon-versions --addon-name NAME --kubernetes-version 1.36` lists them.
ADDON_VERSIONS: dict[str, str | None] = {
    "eks-pod-identity-agent": None,
    "coredns": None,
    "aws-efs-csi-driver": None,
    "aws-ebs-csi-driver": None,
}

# Architectures each EKS add-on's images are built for (the core node group may be arm64, and every add-on but the
# GPU ones runs a pod on it), and where that was checked. The definitive list is per add-on version:
# `aws eks describe-addon-versions --addon-name NAME --kubernetes-version 1.36` returns each version's
# `architecture` (EKS user guide, eks-add-ons.adoc).
ADDON_ARCHES: dict[str, tuple[tuple[str, ...], str]] = {
    "vpc-cni": (("amd64", "arm64"), "EKS user guide nodes/eks-optimized-ami.adoc: CoreDNS, kube-proxy and the VPC CNI "
                                    "are multi-architecture on clusters deployed since 2020-08-17; the aws-node "
                                    "DaemonSet's affinity admits amd64 and arm64 (aws/amazon-vpc-cni-k8s "
                                    "config/master/aws-k8s-cni.yaml @ 00554250)"),
    "kube-proxy": (("amd64", "arm64"), "EKS user guide nodes/eks-optimized-ami.adoc (as vpc-cni)"),
    "coredns": (("amd64", "arm64"), "EKS user guide nodes/eks-optimized-ami.adoc (as vpc-cni)"),
    "eks-pod-identity-agent": (("amd64", "arm64"), "aws/eks-pod-identity-agent charts/eks-pod-identity-agent/"
                                                   "values.yaml @ 00bc0581: the DaemonSet's affinity admits amd64 "
                                                   "and arm64"),
    "aws-ebs-csi-driver": (("amd64", "arm64"), "EKS Blueprints add-ons 'Architectures' page (multi-arch EKS "
                                               "add-ons); arm64 images since kubernetes-sigs/aws-ebs-csi-driver#604"),
    "aws-efs-csi-driver": (("amd64", "arm64"), "kubernetes-sigs/aws-efs-csi-driver Makefile PLATFORM "
                                               "linux/amd64,linux/arm64; the one build without arm64 (v2.1.2, "
                                               "2024-12) was pushed again multi-arch (aws-efs-csi-driver#1544)"),
}


class ChartPin:
    """A Helm chart at a pinned version: `repo` is a Helm repository URL, or the full oci:// chart reference."""

    def __init__(self, name: str, repo: str, version: str):
        self.name, self.repo, self.version = name, repo, version

    @property
    def is_oci(self) -> bool:
        return self.repo.startswith("oci://")

    def __repr__(self) -> str:
        return f"{self.name} {self.version} ({self.repo})"


# Karpenter v1: chart and CRDs at aws/karpenter-provider-aws @ 1d927085 (v1.14.1 patch release, 2026-08-21).
KARPENTER = ChartPin("karpenter", "oci://public.ecr.aws/karpenter/karpenter", "1.14.1")
KARPENTER_NAMESPACE = "kube-system"  # as the getting-started guide: covered by kube-system's API priority rules

# NVIDIA device plugin: NVIDIA/k8s-device-plugin @ 1b826acc, deployments/helm/nvidia-device-plugin.
NVIDIA_DEVICE_PLUGIN = ChartPin("nvidia-device-plugin", "https://nvidia.github.io/k8s-device-plugin", "0.20.0")

# EKS-optimized AL2023 AMI release for Karpenter's `al2023@<version>` alias, which picks the NVIDIA variant for GPU
# instances. v20260714 is the newest release in the amazon-eks-ami changelog we checked (2026-07-23); it carries
# Kubernetes 1.33-1.36. Pinned, not `latest`, so a new AMI never drifts (and replaces) serving GPU nodes.
GPU_AMI_ALIAS = "al2023@v20260714"

# Monitoring charts. kube-prometheus-stack 88.5.3 (Grafana sub-chart 12.11.1): prometheus-community/helm-charts
# @ cf408a29 (values and CRDs in ../shared/reference). dcgm-exporter 4.8.2 (DCGM
# 4.5.3, image 4.5.3-4.8.2-distroless): NVIDIA/dcgm-exporter deployment/Chart.yaml @ 691c9276, tag 4.5.3-4.8.2.
KUBE_PROMETHEUS_STACK = ChartPin("kube-prometheus-stack", "https://prometheus-community.github.io/helm-charts", "88.5.3")
DCGM_EXPORTER = ChartPin("dcgm-exporter", "https://nvidia.github.io/dcgm-exporter/helm-charts", "4.8.2")

# Open WebUI: release 0.6.43 (CHANGELOG.md of open-webui/open-webui, 2025-12-22); images are tagged v<version>.
OPEN_WEBUI_IMAGE = "ghcr.io/open-webui/open-webui:v0.6.43"
# amd64 and arm64: open-webui .github/workflows/docker-build.yaml builds linux/amd64 and linux/arm64 on v* tags.
OPEN_WEBUI_ARCHES = ("amd64", "arm64")
# AIPerf, NVIDIA's benchmark client and GenAI-Perf's successor (NVIDIA's NIM for LLMs benchmarking guide 2.0.0
# benchmarks with it: "Using AIPerf to Benchmark"): PyPI `aiperf` 0.13.0, the newest release (`pip index versions
# aiperf`, 2026-11-27; docs.nvidia.com/aiperf calls v0.13.0 "Latest"). Its wheel needs Python >=3.11,<3.14 (METADATA
# Requires-Python). No image carrying it could be checked from here: AIPerf's own `aiperf kube` defaults to
# nvcr.io/nvidia/aiperf:<version> (aiperf 0.13.0 cli_commands/kube/_kube_common.py), but nvcr.io's manifests were not
# reachable to confirm the tag or its platforms, and NVIDIA's own users of AIPerf in Kubernetes (ai-dynamo/dynamo
# recipes, NVIDIA/aicr's aiperf-bench) pip-install a pinned release into a Python image. So does this stack: the pod
# installs AIPERF_VERSION into a venv on an emptyDir at start (components/webui.py AIPerf), from the pinned image below.
AIPERF_VERSION = "0.13.0"
# The official Python image, patch release and Debian release pinned (docker-library official-images
# library/python: 3.12.12-slim-bookworm).
AIPERF_IMAGE = "docker.io/library/python:3.12.12-slim-bookworm"

# KEDA and its HTTP add-on, as the Helm repository https://kedacore.github.io/charts (kedacore/charts `docs/`)
# publishes them: keda 2.20.2 (app 2.20.2, sha256 db60b1fa...4c4c) and keda-add-ons-http 0.15.0 (app 0.15.0, sha256
# dddb21bd...2001); both digests checked against docs/index.yaml @ 1444d00d and the unpacked archives. The charts and
# values.yaml in ../shared come from kedacore/charts main @ 1444d00d, which has keys these releases lack:
# tests/conformance.py (NOT_RELEASED) refuses them.
KEDA = ChartPin("keda", "https://kedacore.github.io/charts", "2.20.2")
KEDA_HTTP_ADD_ON = ChartPin("keda-add-ons-http", "https://kedacore.github.io/charts", "0.15.0")
# The images the two releases run (the charts' default: tag = appVersion; the add-on's operator does not run,
# components/scaling.py) and the platforms their releases are built for: kedacore/keda v2.20.2 Makefile
# BUILD_PLATFORMS (publish-multiarch, run by .github/workflows/release-build.yml) and kedacore/http-add-on v0.15.0
# Makefile KO_RELEASE_PLATFORMS (ko build --platform). From the build files, not from the registry's manifests.
KEDA_IMAGE_PLATFORMS: dict[str, tuple[str, ...]] = {
    image: ("linux/amd64", "linux/arm64", "linux/s390x") for image in (
        "ghcr.io/kedacore/keda:2.20.2", "ghcr.io/kedacore/keda-metrics-apiserver:2.20.2",
        "ghcr.io/kedacore/keda-admission-webhooks:2.20.2", "ghcr.io/kedacore/http-add-on-interceptor:0.15.0",
        "ghcr.io/kedacore/http-add-on-scaler:0.15.0")}
# Where both run: the add-on's install guide puts it beside KEDA (keda.sh/http-add-on/0.15/operations/installation).
KEDA_NAMESPACE = "keda"
# amd64 only: the Python image is multi-arch, but one of aiperf's dependencies (crick) publishes no linux/aarch64
# wheel, only an sdist that needs a C compiler (AIPerf README, "On Linux aarch64 (arm64) ... needs a C compiler at
# install time"; NVIDIA/aicr#1912), and the slim image has none. Checked 2026-11-27: `pip download aiperf==0.13.0
# --only-binary=:all:` for CPython 3.12 on manylinux aarch64 finds no crick~=0.0.8; on x86_64 it gets every wheel.
# The install refuses source builds (`--only-binary`), so an arm64 node would fail it at once; the pod asks for
# amd64 nodes.
AIPERF_ARCHES = ("amd64",)


# The authenticated endpoint (planning/gateway.py). Envoy Gateway v1.9.0: chart gateway-helm (OCI, chart version =
# tag, envoyproxy/gateway charts/gateway-helm @ v1.9.0); the Envoy AI Gateway v1.1.0 requires EG's extension manager
# and Backend API (envoyproxy/ai-gateway manifests/envoy-gateway-values.yaml @ v1.1.0) and ships its CRDs in a chart
# of their own (site/docs/getting-started/installation.md: CRDs first, then the controller).
ENVOY_GATEWAY = ChartPin("gateway-helm", "oci://docker.io/envoyproxy/gateway-helm", "v1.9.0")
AI_GATEWAY_CRDS = ChartPin("ai-gateway-crds-helm", "oci://docker.io/envoyproxy/ai-gateway-crds-helm", "v1.1.0")
AI_GATEWAY = ChartPin("ai-gateway-helm", "oci://docker.io/envoyproxy/ai-gateway-helm", "v1.1.0")
# Redis for the token limits' counters: the image and tag the AI Gateway's own example runs
# (examples/token_ratelimit/redis.yaml @ v1.1.0), the official image of docker-library/redis.
REDIS_IMAGE = "docker.io/library/redis:8.2.4-alpine3.22"
# Images EG and the AI Gateway start at run time (not in any chart's render): the Envoy proxy (EG v1.9.0
# api/v1alpha1/shared_types.go DefaultEnvoyProxyImage), the AI Gateway's external processor (the controller's
# --extProcImage, chart ai-gateway-helm v1.1.0: tag = appVersion), EG's rate limit service (DefaultRateLimitImage).
ENVOY_PROXY_IMAGE = "docker.io/envoyproxy/envoy:distroless-v1.39.0"
EXTPROC_IMAGE = "docker.io/envoyproxy/ai-gateway-extproc:v1.1.0"
RATELIMIT_IMAGE = "docker.io/envoyproxy/ratelimit:17b1956c"
EG_ARCHES = "envoyproxy/gateway tools/make/image.mk @ v1.9.0: IMAGE_PLATFORMS linux_amd64 linux_arm64"
AI_GATEWAY_ARCHES = ("envoyproxy/ai-gateway .github/workflows/docker_build_job.yaml @ v1.1.0: ENABLE_MULTI_PLATFORMS=true "
                     "(Makefile: --platform linux/amd64,linux/arm64), run by release.yaml")
GATEWAY_RUNTIME_IMAGES: dict[str, tuple[tuple[str, ...], str]] = {
    ENVOY_PROXY_IMAGE: (("amd64", "arm64"), "envoyproxy/envoy ci/docker_ci.sh builds its release images for "
                                            "linux/arm64,linux/amd64 (version read: the one in the library; that "
                                            "the distroless variant is among them is not checked)"),
    EXTPROC_IMAGE: (("amd64", "arm64"), AI_GATEWAY_ARCHES),
    RATELIMIT_IMAGE: (("amd64", "arm64"), "envoyproxy/ratelimit .github/workflows/main.yaml: every main commit is "
                                          "pushed by `make docker_multiarch_push`, tagged with its short sha"),
}

# AWS Load Balancer Controller v3.5.0, chart 3.5.0 from the eks-charts repository (kubernetes-sigs/
# aws-load-balancer-controller tag v3.5.0 @ 11eb202c: helm/aws-load-balancer-controller/Chart.yaml version 3.5.0,
# appVersion v3.5.0; the chart's README installs from https://aws.github.io/eks-charts). Its IAM policy is that tag's
# docs/install/iam_policy.json, kept as data/aws-load-balancer-controller-iam-policy.json. Since v3.0.0 the chart's
# version follows the controller's (the chart jumped from 1.17.1 to 3.0.0, aws/eks-charts#1297, #1312), and a Helm
# upgrade does not update the CRDs in its crds/ folder (kubernetes-sigs/aws-load-balancer-controller#4555): an
# upgrade of this pin must apply the new tag's crds.yaml first.
AWS_LOAD_BALANCER_CONTROLLER = ChartPin("aws-load-balancer-controller", "https://aws.github.io/eks-charts", "3.5.0")
AWS_LOAD_BALANCER_CONTROLLER_IMAGE = "public.ecr.aws/eks/aws-load-balancer-controller:v3.5.0"
AWS_LOAD_BALANCER_CONTROLLER_NAMESPACE = "kube-system"  # as its install guide; API priority of kube-system


# Architectures of every image a pod of this program runs (registry/repository:tag as the pod names it, digest
# left out), with where each was checked: a pod that may land on an arm64 node (the core node group, Karpenter's
# CPU nodes) may run only images built for arm64 (tests/test_placement.py). Chart images are those the pinned
# charts render; a chart update that changes one fails that test until it is recorded here. The NIM images
# (models.yaml) run on GPU nodes only, which are amd64 (the GPU NodePool's requirement).
PROMETHEUS_BUILD = ("Prometheus projects' Makefile.common: DOCKER_ARCHS amd64 arm64 armv7 ppc64le riscv64 s390x, "
                    "every Dockerfile variant (distroless too) built per architecture (prometheus/alertmanager "
                    "@ 68fb2d57)")
IMAGE_ARCHES: dict[str, tuple[tuple[str, ...], str]] = {
    "public.ecr.aws/karpenter/controller:1.14.1": (
        ("amd64", "arm64"), "aws/karpenter-provider-aws @ 1d927085 .ko.yaml: defaultPlatforms linux/arm64, linux/amd64"),
    "quay.io/prometheus/prometheus:v3.14.0-distroless": (("amd64", "arm64"), PROMETHEUS_BUILD),
    "quay.io/prometheus/alertmanager:v0.34.0": (("amd64", "arm64"), PROMETHEUS_BUILD),
    "quay.io/prometheus/node-exporter:v1.12.1-distroless": (("amd64", "arm64"), PROMETHEUS_BUILD),
    "quay.io/prometheus-operator/prometheus-operator:v0.93.1": (
        ("amd64", "arm64"), "prometheus-operator scripts/push-docker-image.sh: CPU_ARCHS amd64 arm64 arm"),
    "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1": (
        ("amd64", "arm64"), "prometheus-operator scripts/push-docker-image.sh: CPU_ARCHS amd64 arm64 arm"),
    "ghcr.io/jkroepke/kube-webhook-certgen:1.8.7": (
        ("amd64", "arm64"), "jkroepke/kube-webhook-certgen .goreleaser.yaml @ 2bba5f68: dockers_v2 platforms "
                            "linux/amd64, linux/arm64, linux/s390x"),
    "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0": (
        ("amd64", "arm64"), "kubernetes/kube-state-metrics Makefile: ALL_ARCH amd64 arm arm64 ppc64le s390x"),
    "docker.io/grafana/grafana:13.2.0": (
        ("amd64", "arm64"), "grafana/grafana .github/workflows/release-build.yml @ 0030f686: docker images for "
                            "linux-amd64, linux-arm64, linux-armv7, linux-s390x"),
    "quay.io/kiwigrid/k8s-sidecar:2.10.1": (
        ("amd64", "arm64"), "kiwigrid/k8s-sidecar docker-bake.hcl: platforms amd64, arm64, arm/v7, ppc64le, riscv64"),
    "registry.k8s.io/prometheus-adapter/prometheus-adapter:v0.12.0": (
        ("amd64", "arm64"), "kubernetes-sigs/prometheus-adapter Makefile: ALL_ARCH amd64 arm arm64 ppc64le s390x"),
    "nvcr.io/nvidia/k8s-device-plugin:v0.20.0": (
        ("amd64",), "runs on GPU nodes only (amd64); arm64 not needed, so not checked"),
    "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless": (
        ("amd64",), "runs on GPU nodes only (amd64); arm64 not needed, so not checked"),
    OPEN_WEBUI_IMAGE: (OPEN_WEBUI_ARCHES, "open-webui .github/workflows/docker-build.yaml (above)"),
    **{image: (tuple(p.removeprefix("linux/") for p in platforms if p in ("linux/amd64", "linux/arm64")),
               "KEDA / HTTP add-on release build files (above)")
       for image, platforms in KEDA_IMAGE_PLATFORMS.items()},
    AIPERF_IMAGE: (AIPERF_ARCHES, "the image is multi-arch, but aiperf's crick has no arm64 wheel (above)"),
    "docker.io/envoyproxy/gateway:v1.9.0": (("amd64", "arm64"), EG_ARCHES),
    "docker.io/envoyproxy/ai-gateway-controller:v1.1.0": (("amd64", "arm64"), AI_GATEWAY_ARCHES),
    REDIS_IMAGE: (("amd64", "arm64"), "docker-library/official-images library/redis: the alpine variants are built "
                                      "for amd64 and arm64v8 (among others)"),
    **GATEWAY_RUNTIME_IMAGES,
    AWS_LOAD_BALANCER_CONTROLLER_IMAGE: (
        ("amd64", "arm64"), "kubernetes-sigs/aws-load-balancer-controller Makefile @ v3.5.0: IMG_PLATFORM "
                            "linux/amd64,linux/arm64 (ko build and docker buildx)"),
}
