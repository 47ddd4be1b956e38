"""How long a model takes from no replica to its first answer (a cold start), part by part, each figure with its
source or labelled an estimate. The cost estimate shows it per model; a model that scales to zero makes its first
request wait this long.

A cold start with the weights already in the EFS cache (pre-cached, or a model that ran before):
1. a GPU node: EC2 launch, boot, kubelet registration, then the NVIDIA device plugin advertising the GPUs;
2. the NIM image, pulled onto the node's local NVMe (a new node has no image cache);
3. the model: its weights read from EFS, then the inference engine starts and NIM reports ready.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# 1. ESTIMATE, no primary figure found. CPU nodes register ~40 s after launch (awslabs/amazon-eks-ami #1099,
#    aws/karpenter-provider-aws #3102); the EKS AMI maintainers note GPU instance types take "much longer" to boot
#    (same issue) and the device plugin must then register `nvidia.com/gpu`: 90-180 s, the dearer end used.
GPU_NODE_READY_S = 180

# 2. ESTIMATE: NGC publishes no NIM LLM image size. A comparable NGC image, nvcr.io/nvidia/pytorch:24.08-py3, is
#    9.5 GB compressed and pulled uncached on an EKS node in ~334 s, ~28 MB/s with unpacking
#    (aws-ia/terraform-aws-eks-blueprints, patterns/ml-container-cache/uncached-pytorch.txt). NIM LLM images bundle
#    CUDA, TensorRT-LLM and vLLM: 12 GB assumed.
NIM_IMAGE_GB = 12.0
IMAGE_PULL_MB_PER_S = 28.0

# 3. Reading the weights: EFS Elastic throughput gives one client up to 1,500 MiB/s with the EFS CSI driver
#    (docs.aws.amazon.com/efs/latest/ug/performance.html); the stack uses Elastic and the CSI add-on. Weights are
#    ~2 GB per billion parameters in bf16 (NIM support matrix: Llama 3.1 8B Instruct FP16 profiles 15-16 GB).
EFS_READ_MIB_PER_S = 1500.0
WEIGHTS_GB_PER_BILLION = 2.0
#    ESTIMATE: engine start and warm-up after the weights are read. ai-on-eks measured ~81 s from pod start to
#    /v1/health/ready for llama-3.1-8b from an EFS cache (website/docs/ai/inference/GPUs/nvidia-nim-operator.md
#    @ 41a979ee), of which ~11 s is reading 16 GB at the rate above: ~70 s.
ENGINE_START_S = 70

SOURCES = {
    "gpu_node": f"GPU node ready: ~{GPU_NODE_READY_S} s ESTIMATE (CPU nodes register in ~40 s; GPU types boot "
                "slower, no published figure)",
    "image_pull": f"NIM image: ~{NIM_IMAGE_GB:g} GB ASSUMED (NGC publishes no size) at ~{IMAGE_PULL_MB_PER_S:g} MB/s "
                  "(an uncached 9.5 GB NGC image pulled on EKS, aws-ia ml-container-cache)",
    "model_load": f"weights ~{WEIGHTS_GB_PER_BILLION:g} GB per billion parameters read from EFS at "
                  f"{EFS_READ_MIB_PER_S:g} MiB/s (EFS Elastic, per client), + ~{ENGINE_START_S} s engine start "
                  "ESTIMATE (ai-on-eks: 8B ready in ~81 s from cache)",
}


@dataclass(frozen=True)
class ColdStart:
    """Seconds for each part of a cold start with the weights cached."""

    gpu_node_s: int
    image_pull_s: int
    model_load_s: int

    @property
    def total_s(self) -> int:
        return self.gpu_node_s + self.image_pull_s + self.model_load_s

    @property
    def minutes(self) -> int:
        """Whole minutes, rounded up: what timeouts and the README speak in."""
        return math.ceil(self.total_s / 60)


def weights_gb(parameters_b: float) -> float:
    return parameters_b * WEIGHTS_GB_PER_BILLION


def cold_start(parameters_b: float) -> ColdStart:
    """A cold start of a model of `parameters_b` billion parameters whose weights are in the EFS cache."""
    pull = NIM_IMAGE_GB * 1000 / IMAGE_PULL_MB_PER_S
    read = weights_gb(parameters_b) * 1e9 / (EFS_READ_MIB_PER_S * 2**20)
    return ColdStart(gpu_node_s=GPU_NODE_READY_S, image_pull_s=math.ceil(pull),
                     model_load_s=math.ceil(read) + ENGINE_START_S)
