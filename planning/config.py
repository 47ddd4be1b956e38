"""Typed, validated stack configuration: the one place that reads `pulumi.Config`.

Every key lives in the `nim-on-eks` namespace and is snake_case, as users type it with `pulumi config set`. Each
key is declared once, as a field of StackConfig or of one of its groups (planning/keys.py): that declaration
gives the key's name, parser, default and help text, and from it come the parsing, the typed attribute, the
error messages and the README's configuration table (`python -m tools.readme_config --write`). Validation collects
every problem before anything is created and raises them together as one `pulumi.RunError`, each naming the key,
the bad value and what is allowed: first each key on its own (in declaration order), then `aws:region`, then
what relates keys (the models with the catalog and the GPU settings, core node counts, the default cluster name).

The typed config, by what each part configures (key -> attribute):
- the stack: `cfg.cluster_name`, `cfg.eks_version`, `cfg.cluster_admins`, `cfg.nim_namespace`,
  `cfg.scale_to_zero_idle_minutes` (each model's default `idle_minutes`), `cfg.tags`
  (`cfg.aws_tags` adds the program's own), `cfg.hourly_budget`, the switches `cfg.monitoring`, `cfg.open_webui`,
  `cfg.aiperf` (`genai_perf`, its old name, is read into it, with a warning in `cfg.warnings`); `cfg.models` (from
  `nim_models`, parsed and fitted by planning/models.py), `cfg.ngc_api_key` (a Secret), and `cfg.warnings`,
  `cfg.project`, `cfg.stack`, `cfg.region`, `cfg.catalog`, which are not keys;
- `cfg.logs` (control-plane logs): `cluster_log_types` -> `types`, `cluster_log_retention_days` -> `retention_days`;
- `cfg.network`: `vpc_cidr`, `availability_zones`, `single_nat_gateway` (same names);
- `cfg.core` (the core node group): `core_instance_type` -> `instance_type`, `core_node_count` -> `node_count`,
  `core_node_max` -> `node_max`, `core_disk_gb` -> `disk_gb`;
- `cfg.gpu` (what Karpenter launches for the models): `gpu_instance_families` -> `instance_families`,
  `gpu_capacity_types` -> `capacity_types`, `gpu_limit` -> `limit`, `gpu_root_volume_gb` -> `root_volume_gb`,
  `ami_alias` (also the AMI of the `cpu` NodePool's nodes);
- `cfg.cpu` (what Karpenter launches for everything else): `cpu_instance_families` -> `instance_families`,
  `cpu_capacity_types` -> `capacity_types`, `cpu_limit` -> `limit`;
- `cfg.efs` (the model cache): `efs_backups` -> `backups`, `efs_ia_after_days` -> `ia_after_days`;
- `cfg.prometheus`: `prometheus_retention` -> `retention`, `prometheus_volume_gb` -> `volume_gb`;
- `cfg.alerts`: `alert_ttft_p90_seconds` -> `ttft_p90_seconds`, `alert_email` -> `email`;
- `cfg.endpoint` (the gateway's NLB): `public_endpoint` -> `public`, `certificate_arn` (same name).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pulumi

from planning import versions
from planning.catalog import Catalog
from planning.endpoint import CERTIFICATE_ARN_EXAMPLE, CERTIFICATE_ARN_RE, certificate_problem
from planning.gpus import GPU_FAMILIES
from planning.instances import load_instances
from planning.keys import Bad, Secret, boolean, build, distinct_list, group, key, keys_of, matching, names, \
    number, one_of, parse_keys, readme_table, show, unknown_keys, whole, whole_choice
from planning.models import CAPACITY_TYPES, FIELDS as MODEL_FIELDS, ModelRequest, fit_models, parse_models
from planning.security import digest_map, digest_problems, stack_charts
from planning.scaling import DEFAULT_IDLE_MINUTES, MAX_IDLE_MINUTES, MIN_IDLE_MINUTES, needs_interceptor
from planning.pools import CpuPoolFitError, core_shortfall, cpu_pool, node_daemonsets, size_cpu_pool, unplaceable
from planning.workloads import GATEWAY, HTTP_ADD_ON, PRECACHE_JOB, RATE_LIMITS, cpu_pool_workloads
from planning.gateway import KEY_NAME_RE, RESERVED_KEY_NAMES, ApiKey, needs_rate_limits

NAMESPACE = "nim-on-eks"


class ConfigError(pulumi.RunError):
    """All configuration problems, reported together before any resource is created."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"Invalid stack configuration ({len(self.problems)} problem"
            f"{'s' if len(self.problems) != 1 else ''}); nothing was created:\n{lines}"
        )


# ------------------------------------------------------------------------------ parsers of single keys

CLUSTER_NAME_RE = r"[a-z][a-z0-9-]{0,30}[a-z0-9]"
# An address SNS can email: local part and a dotted domain with a letter TLD, at most 254 characters (RFC 5321).
EMAIL_RE = (r"(?=.{6,254}$)[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
PRINCIPAL_RE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+")
# Tag prefixes AWS reserves, and those Karpenter sets itself (its EC2NodeClass refuses them as extra tags).
RESERVED_TAG_PREFIXES = ("aws:", "kubernetes.io/cluster", "karpenter.sh/", "karpenter.k8s.aws/", "eks:")
# EKS control-plane log types (EKS API LogSetup.types), in the order the cluster is given them.
CLUSTER_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
# Retention periods CloudWatch Logs accepts (PutRetentionPolicy; pulumi-aws LogGroup.retention_in_days). Its 0,
# "never expire", is left out on purpose: logs kept forever are the cost this key exists to bound.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)
EFS_IA_AFTER_DAYS = (0, 1, 7, 14, 30, 60, 90, 180, 270, 365)
# Instance types without GPUs that data/instance_types.yaml describes (architecture, allocatable resources, price):
# the core node group and the CPU NodePool choose from these.
CPU_TYPES = tuple(load_instances().cpu_types())
CPU_FAMILIES = tuple(dict.fromkeys(load_instances().types[t].family for t in CPU_TYPES))
# The CPU NodePool's default families: every non-burstable one in the data. Graviton general-purpose, compute and
# memory families (cheaper than their x86 peers, and every image on the pool but AIPerf's is multi-arch:
# planning/versions.py) and x86 ones for the amd64-only pods; many families, many spot pools to fall back on. Not
# the burstable T families: the pool's pods run around the clock, and above a T instance's baseline its default
# unlimited mode bills surplus credits the estimate cannot price.
DEFAULT_CPU_FAMILIES = ("m7g", "m8g", "c7g", "c8g", "m6g", "r7g", "m7i", "m6i", "c6i", "m5")


def private_cidr(raw: str) -> str:
    """A private IPv4 network between /16 and /20: room for large private subnets in up to 6 AZs."""
    try:
        net = ipaddress.IPv4Network(raw.strip(), strict=True)
    except ValueError as err:
        raise Bad(f"not an IPv4 network in CIDR form ({err}); allowed: e.g. 10.0.0.0/16") from None
    if not net.is_private:
        raise Bad("allowed: a private (RFC 1918) range such as 10.0.0.0/16")
    if not 16 <= net.prefixlen <= 20:
        raise Bad("allowed: a prefix from /16 (AWS's largest VPC) to /20 (pods take VPC addresses)")
    return str(net)


def image_digests(raw: Any) -> dict[str, str]:
    try:
        return digest_map(raw)
    except ValueError as err:
        raise Bad(str(err)) from None


def api_keys(raw: Any) -> tuple[ApiKey, ...]:
    """`api_keys`: a JSON list of names or of objects {name, tokens_per_minute, rotation}; comma-separated names too."""
    value = names(raw)
    allowed = ('allowed: a JSON list of key names or objects {"name": "team-a", "tokens_per_minute": 100000, '
               '"rotation": 1}, e.g. ["default"]')
    if not isinstance(value, list) or not value:
        raise Bad(allowed)
    parsed, problems = [], []
    for item in value:
        item = {"name": item} if isinstance(item, str) else item
        if not isinstance(item, dict) or not set(item) <= {"name", "tokens_per_minute", "rotation"}:
            problems.append(f"{show(item)}: {allowed}")
            continue
        name, tpm, rotation = item.get("name"), item.get("tokens_per_minute"), item.get("rotation", 0)
        if not isinstance(name, str) or not KEY_NAME_RE.fullmatch(name) or name in RESERVED_KEY_NAMES:
            problems.append(f"name {show(name)}: allowed: 1-32 lowercase letters, digits and '-', starting with a "
                            f"letter, not {', '.join(RESERVED_KEY_NAMES)} (the gateway's own clients)")
        if tpm is not None and (isinstance(tpm, bool) or not isinstance(tpm, int) or not 1 <= tpm <= 10**9):
            problems.append(f"{name}: tokens_per_minute {show(tpm)}: allowed: a whole number of tokens from 1 to "
                            "1000000000 (0 would refuse every request; leave it out for no limit)")
        if isinstance(rotation, bool) or not isinstance(rotation, int) or rotation < 0:
            problems.append(f"{name}: rotation {show(rotation)}: allowed: a whole number from 0; change it to issue "
                            "a new key")
        parsed.append(ApiKey(name, tpm, rotation) if isinstance(name, str) else None)
    if duplicated := sorted({k.name for k in parsed if k and [p.name for p in parsed if p].count(k.name) > 1}):
        problems.append(f"{', '.join(duplicated)}: a name is given twice; allowed: distinct names")
    if problems:
        raise Bad("; ".join(problems))
    return tuple(k for k in parsed if k)


def tag_map(raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise Bad('allowed: a map of strings, e.g. {"team": "ml", "cost-center": "42"}') from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        raise Bad('allowed: a map of strings, e.g. {"team": "ml"}')
    bad = [k for k in value if not k or len(k) > 128 or k.lower().startswith(RESERVED_TAG_PREFIXES)]
    if bad or any(len(str(v)) > 256 for v in value.values()):
        raise Bad(f"tag keys must be 1-128 characters and not start with {', '.join(RESERVED_TAG_PREFIXES)} "
                  "(AWS's and the ones Karpenter and Kubernetes set); values at most 256 characters")
    return {k: str(v) for k, v in value.items()}


def principal_arns(raw: str) -> tuple[str, ...]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and PRINCIPAL_RE.fullmatch(v) for v in value):
        raise Bad("allowed: a JSON list of IAM role or user ARNs, e.g. [\"arn:aws:iam::123456789012:role/admin\"]")
    return tuple(value)


def log_types(raw: Any) -> tuple[str, ...]:
    """`cluster_log_types`: a JSON list (or comma-separated names) of distinct log types; empty turns logging off."""
    value = names(raw)
    if (not isinstance(value, list) or len(set(map(str, value))) != len(value)
            or not all(isinstance(v, str) and v in CLUSTER_LOG_TYPES for v in value)):
        raise Bad(f"allowed: a list of distinct EKS control-plane log types from {', '.join(CLUSTER_LOG_TYPES)}, "
                  "or [] to send none")
    return tuple(t for t in CLUSTER_LOG_TYPES if t in value)


def cpu_instance_type(raw: Any) -> str:
    if not isinstance(raw, str) or raw not in CPU_TYPES:
        raise Bad(f"allowed: an instance type without GPUs that data/instance_types.yaml describes (its "
                  f"architecture picks the AMI, its allocatable resources must hold the core pods): "
                  f"{', '.join(CPU_TYPES)}; for another, add its row there from Karpenter's instance-types "
                  "reference")
    return raw


def log_retention(raw: Any) -> int:
    try:
        return whole_choice(LOG_RETENTION_DAYS)(raw)
    except Bad as bad:
        raise Bad(f"{bad} (the periods CloudWatch Logs accepts; 0, never expire, is not offered)") from None


# ---------------------------------------------------------------------------------------------- the keys


@dataclass(frozen=True)
class LogSettings:
    """EKS control-plane logs, in the CloudWatch log group the stack owns (components/cluster.py)."""

    # Default: `audit` (who did what to which object: the one record nothing in the cluster can rebuild after the
    # fact, and the bulk of the bill) and `authenticator` (IAM identity -> Kubernetes user for every access entry;
    # small). Not `api`, `controllerManager`, `scheduler`: component diagnostics, worth switching on while
    # debugging, not worth paying for every day. Volumes and prices: data/prices.yaml, planning/cost.py.
    types: tuple[str, ...] = key(
        "cluster_log_types", log_types, ("audit", "authenticator"),
        "EKS control-plane logs sent to CloudWatch Logs, a JSON list (or comma-separated) from `api`, `audit`, "
        "`authenticator`, `controllerManager`, `scheduler`; `[]` sends none and creates no log group. The default "
        "keeps `audit` (who did what to which object: the one record nothing in the cluster can rebuild later, and "
        "most of the volume) and `authenticator` (which IAM identity became which Kubernetes user, for every access "
        "entry; small); `api`, `controllerManager` and `scheduler` are component diagnostics, worth switching on "
        "while you debug. About $17/month at the assumed volume (see What it costs).")
    # 30 days: long enough to investigate what is noticed within a month, while storage stays small next to
    # ingestion (each GB is kept about a month, $0.03, after costing $0.50 to ingest: ~6%; at 365 days ~70%).
    # Compliance regimes asking for a year of audit trail set 365 or 400.
    retention_days: int = key(
        "cluster_log_retention_days", log_retention, 30,
        "Days CloudWatch keeps those logs in `/aws/eks/<cluster>/cluster`: "
        f"{', '.join(map(str, LOG_RETENTION_DAYS[:-1]))} or {LOG_RETENTION_DAYS[-1]} (the periods CloudWatch "
        "accepts; never-expire is not offered). 30 days covers what is noticed within a month while storage stays "
        "about 6% of the ingestion cost; set 365 or 400 where a year of audit trail is required.")


@dataclass(frozen=True)
class NetworkSettings:
    """The VPC (components/network.py)."""

    vpc_cidr: str = key("vpc_cidr", private_cidr, "10.0.0.0/16", "Private IPv4 range, /16 to /20.")
    availability_zones: int = key("availability_zones", whole(2, 6), 3,
                                  "Number of AZs (2-6); one private and one public subnet in each.")
    single_nat_gateway: bool = key(
        "single_nat_gateway", boolean, True,
        "One NAT gateway for all AZs (about $33/month each) instead of one per AZ (survives an AZ outage).")


@dataclass(frozen=True)
class CoreSettings:
    """The core managed node group: Karpenter, CoreDNS, monitoring; never GPUs (components/cluster.py)."""

    # t4g.medium: the smallest type that holds the core's pods (planning/pools.py core_shortfall), Graviton.
    instance_type: str = key(
        "core_instance_type", cpu_instance_type, "t4g.medium",
        "Core node group instance type, one of the CPU types in `data/instance_types.yaml` (its architecture picks "
        "the AMI: Graviton types run AL2023 ARM). It must hold Karpenter, CoreDNS, the CSI controllers and the node "
        "DaemonSets; `pulumi up` refuses one that cannot. T types are burstable: above their baseline (t4g.medium: "
        "20% of each vCPU, on average) their default unlimited mode bills surplus credits. A new type makes a new "
        "node group (see Upgrading).")
    node_count: int = key("core_node_count", whole(2, 20), 2,
                          "Core nodes, desired and minimum (Karpenter's two replicas need two).")
    node_max: int = key("core_node_max", whole(2, 50), 4, "Most core nodes.")
    # 30: the AL2023 AMI's 20 GiB root snapshot plus the core's few images and its logs.
    disk_gb: int = key("core_disk_gb", whole(20, 1000), 30, "Encrypted gp3 root volume of each core node, GiB.")


@dataclass(frozen=True)
class CpuSettings:
    """What Karpenter may launch for every pod but the models and the core's: the `cpu` NodePool
    (components/karpenter.py, planning/pools.py)."""

    instance_families: tuple[str, ...] = key(
        "cpu_instance_families", distinct_list(CPU_FAMILIES, "CPU families in data/instance_types.yaml"),
        DEFAULT_CPU_FAMILIES,
        "EC2 families Karpenter may launch CPU nodes from, for monitoring, Open WebUI, AIPerf and autoscaling: "
        f"{', '.join(f'`{f}`' for f in CPU_FAMILIES)}. The default: every non-burstable one, Graviton and x86 "
        "(for the pods that run on amd64 only, AIPerf); not the burstable T families. JSON list or comma-separated.")
    capacity_types: tuple[str, ...] = key(
        "cpu_capacity_types", distinct_list(CAPACITY_TYPES, "capacity types"), CAPACITY_TYPES,
        "Capacity types for CPU nodes. With both, Karpenter launches spot and falls back to on-demand when spot "
        "is short; a spot interruption restarts the pods on the node (Prometheus and Open WebUI keep their "
        "volumes).")
    limit: int = key("cpu_limit", whole(1, 1024), 16,
                     "Most vCPUs all CPU nodes together may have: the CPU NodePool's `limits`, so a mistake cannot "
                     "launch unbounded CPU nodes.")


@dataclass(frozen=True)
class GpuSettings:
    """What Karpenter may launch for the models: the `gpu` NodePool and EC2NodeClass (components/karpenter.py)."""

    instance_families: tuple[str, ...] = key(
        "gpu_instance_families", distinct_list(GPU_FAMILIES, "EC2 GPU families"), ("g5", "g6", "g6e"),
        "EC2 families Karpenter may launch for models: `g4dn` (T4), `g5` (A10G), `g6` (L4), `g6e` (L40S), `p4d` "
        "(A100 40 GB), `p4de` (A100 80 GB), `p5` (H100), `p5en` (H200). JSON list or comma-separated.")
    capacity_types: tuple[str, ...] = key(
        "gpu_capacity_types", distinct_list(CAPACITY_TYPES, "capacity types"), CAPACITY_TYPES,
        "Capacity types for GPU nodes. With both, Karpenter launches spot and falls back to on-demand when spot "
        "is short.")
    limit: int = key("gpu_limit", whole(1, 1024), 16,
                     "Most GPUs all GPU nodes together may have: the GPU NodePool's `limits`, so a mistake cannot "
                     "launch unbounded GPUs.")
    ami_alias: str = key(
        "ami_alias",
        matching(r"al2023@(latest|v\d{8})", "al2023@vYYYYMMDD (or al2023@latest, which re-images nodes on every "
                 "release)"),
        versions.GPU_AMI_ALIAS,
        "EKS-optimized AL2023 release for Karpenter's nodes (the NVIDIA variant on GPU instances). Pinned: "
        "`al2023@latest` would replace GPU nodes on every AMI release.")
    # 20: the AL2023 (NVIDIA) AMI's root snapshot (awslabs/amazon-eks-ami templates/al2023/template.json); images and
    # the kubelet live on the local NVMe (RAID0), so the root volume needs the OS and logs only.
    root_volume_gb: int = key("gpu_root_volume_gb", whole(20, 4000), 40,
                              "Encrypted gp3 root volume of each GPU node, GiB: the OS only (images and the kubelet "
                              "are on the local NVMe).")


@dataclass(frozen=True)
class EfsSettings:
    """The EFS model cache (components/storage.py)."""

    backups: bool = key("efs_backups", boolean, False,
                        "AWS Backup of the EFS model cache (it can always be downloaded again, so off saves money).")
    ia_after_days: int = key(
        "efs_ia_after_days", whole_choice(EFS_IA_AFTER_DAYS), 0,
        f"Move cache files unread this many days to EFS Infrequent Access ({', '.join(map(str, EFS_IA_AFTER_DAYS[1:]))}"
        "); `0` never, since IA reads are slower and billed per GB.")


@dataclass(frozen=True)
class PrometheusSettings:
    """Prometheus of kube-prometheus-stack (components/monitoring.py)."""

    retention: str = key("prometheus_retention",
                         matching(r"[1-9][0-9]*(h|d|w|y)", "a Prometheus duration such as 15d, 72h or 4w"), "15d",
                         "How long Prometheus keeps metrics (also capped at 85% of its volume).")
    volume_gb: int = key("prometheus_volume_gb", whole(10, 4000), 50, "Encrypted gp3 volume for Prometheus data, GiB.")


@dataclass(frozen=True)
class AlertSettings:
    """The NIM alert rules and where alerts go (components/monitoring.py, components/alerts.py)."""

    ttft_p90_seconds: float = key("alert_ttft_p90_seconds", number(0.05, 600), 3.0,
                                  "Alert when a model's p90 time to first token stays above this many seconds for "
                                  "10 minutes.")
    email: str | None = key(
        "alert_email", matching(EMAIL_RE, "an email address such as ops@example.com"), None,
        "Email address the alerts go to, through an encrypted SNS topic; AWS first sends a confirmation email that "
        "must be accepted. Unset: Alertmanager has no receiver, and `pulumi up` and `make plan` warn.")


@dataclass(frozen=True)
class EndpointSettings:
    """How the gateway is reached: the NLB the AWS Load Balancer Controller makes for it (planning/endpoint.py)."""

    public: bool = key(
        "public_endpoint", boolean, False,
        "Expose the gateway on an internet-facing NLB (in the public subnets) instead of an internal one reachable "
        "only from the VPC and networks connected to it. Without `certificate_arn` it serves plain HTTP: `pulumi up` "
        "and `make plan` warn.")
    certificate_arn: str | None = key(
        "certificate_arn",
        matching(CERTIFICATE_ARN_RE, f"an ACM certificate ARN, arn:<partition>:acm:<region>:<12-digit "
                                     f"account>:certificate/<uuid>, e.g. {CERTIFICATE_ARN_EXAMPLE}"),
        None,
        "ACM certificate (ARN, in the stack's region) for TLS on the NLB: it listens on 443 with TLS 1.2/1.3 only "
        "and forwards to the gateway inside the VPC. Unset: plain HTTP on port 80.")


@dataclass(frozen=True)
class StackConfig:
    """The validated stack configuration every component is built from."""

    models: tuple[ModelRequest, ...] = key(  # parsed with the catalog and fitted to `gpu`: parse_config's 2nd step
        "nim_models", None, None,
        f"Models to serve: a JSON list of catalog names or objects `{{{', '.join(MODEL_FIELDS)}}}` (below). A bare "
        "name or comma-separated names are accepted too.",
        required="allowed: a list of models from models.yaml, e.g. "
                 "`pulumi config set nim_models '[\"meta/llama3-8b-instruct\"]'`")
    ngc_api_key: Secret = key(
        "ngc_api_key", Secret, None,
        "NGC API key, used to pull NIM images and model weights. Refused if stored in clear text.", secret=True,
        required="run `pulumi config set --secret ngc_api_key nvapi-...` (an NGC API key from ngc.nvidia.com)")
    cluster_name: str = key(  # default: from project and stack, parse_config's 2nd step
        "cluster_name", matching(CLUSTER_NAME_RE, "2-32 lowercase letters, digits and '-', starting with a letter"),
        None, "EKS cluster name (2-32 lowercase letters, digits, `-`); also names the VPC, node group and queue.",
        shown_default="`<project>-<stack>`")
    eks_version: str = key(
        "eks_version", one_of(versions.SUPPORTED_EKS_VERSIONS), versions.DEFAULT_EKS_VERSION,
        f"Kubernetes version: {versions.SUPPORTED_EKS_VERSIONS[0]} to {versions.SUPPORTED_EKS_VERSIONS[-1]}, those "
        "Karpenter 1.14 supports.")
    logs: LogSettings = group()
    network: NetworkSettings = group()
    core: CoreSettings = group()
    cluster_admins: tuple[str, ...] = key(
        "cluster_admins", principal_arns, (),
        "IAM role or user ARNs (JSON list) given cluster-admin access entries; the identity running `pulumi up` is "
        "admin already.")
    gpu: GpuSettings = group()
    cpu: CpuSettings = group()
    efs: EfsSettings = group()
    nim_namespace: str = key(
        "nim_namespace",
        matching(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", "a Kubernetes namespace name (lowercase letters, digits, '-')"),
        "nim", "Kubernetes namespace of the NIM servers (and AIPerf).")
    # 20: about two cold starts' worth of GPU-node time (planning/scaling.py says why); 5 at least, below a cold start
    # a model would thrash between zero and one.
    scale_to_zero_idle_minutes: int = key(
        "scale_to_zero_idle_minutes", whole(MIN_IDLE_MINUTES, MAX_IDLE_MINUTES), DEFAULT_IDLE_MINUTES,
        "Minutes without a request before a model with `min_replicas: 0` scales to zero (each model may set "
        "`idle_minutes`). The default idles about as long as two cold starts keep a GPU node busy, so a pause in a "
        f"session costs no cold start; {MIN_IDLE_MINUTES} to {MAX_IDLE_MINUTES}.")
    prometheus: PrometheusSettings = group()
    alerts: AlertSettings = group()
    endpoint: EndpointSettings = group()
    hourly_budget: float | None = key(
        "hourly_budget", number(0.01, 100000), None,
        "USD per hour the stack may cost at `max_replicas` (spot basis, as the estimate shows it). Above it `pulumi up` warns and `make plan` exits 1, "
        "naming the models that drive the cost and what would fit.")
    tags: dict[str, str] = key(
        "tags", tag_map, {},
        "Extra AWS tags for every AWS resource, a JSON map; `project`, `stack` and `nim-on-eks/cluster` are always "
        "set.")
    monitoring: bool = key("monitoring", boolean, True,
                           "Prometheus, Grafana, the NIM dashboard, alerts, and NIM's KV-cache metric models scale on "
                           "(without it they scale on requests through the interceptor).")
    open_webui: bool = key("open_webui", boolean, True, "Open WebUI chat front end.")
    aiperf: bool = key(
        "aiperf", boolean, False,
        "An AIPerf pod (NVIDIA's benchmark client) beside the models, for `kubectl exec` benchmarks; the "
        "`aiperf_commands` output gives the command per model.")
    # The switch's name before AIPerf replaced GenAI-Perf: still read (into `aiperf`, with a warning) so stacks that
    # set it keep their benchmark pod; setting both is an error.
    genai_perf: bool | None = key(
        "genai_perf", boolean, None,
        "Deprecated: the old name of `aiperf`, still read as it (with a warning). Set `aiperf` instead; setting both "
        "is an error.", shown_default="(unset)")
    gateway: bool = key(
        "gateway", boolean, True,
        "One authenticated, OpenAI-compatible endpoint for every model (Envoy AI Gateway behind an NLB): requests "
        "name the model in `model` and carry an API key. Off: models are reachable only inside the cluster.")
    api_keys: tuple[ApiKey, ...] = key(
        "api_keys", api_keys, (ApiKey("default"),),
        "The gateway's API keys, a JSON list of names or objects `{name, tokens_per_minute, rotation}`. Each key is "
        "generated (48 random characters) and kept in one AWS Secrets Manager secret (the `api_keys_command` "
        "output reads it); `tokens_per_minute` limits the tokens (prompt and answer) its requests may use per "
        "minute (then 429); a new `rotation` number issues a new key for that name.",
        shown_default='`["default"]`')
    image_digests: dict[str, str] = key(
        "image_digests", image_digests, {},
        "Pull images by digest: a JSON map from an image as the plan shows it (`repository:tag`: Open WebUI, "
        "AIPerf, a model's NIM, and the images of the Karpenter and kube-prometheus-stack charts) to its "
        "`sha256:` digest; the tag stays pinned, the digest makes it immutable. A key naming no image of the stack, "
        "or an image whose chart takes no digest (device plugin, DCGM exporter, KEDA), is an error.")
    # not keys
    warnings: tuple[str, ...]  # what `pulumi up` should say about the config (a deprecated key)
    project: str
    stack: str
    region: str
    catalog: Catalog = field(repr=False)

    @property
    def program_tags(self) -> dict[str, str]:
        """The program's own tags: who made it and for which stack. Names only, so they also fit where a tag map is
        written `k=v,k=v` (the AWS Load Balancer Controller's default tags and Service annotations)."""
        return {"project": self.project, "stack": self.stack, "nim-on-eks/cluster": self.cluster_name}

    @property
    def aws_tags(self) -> dict[str, str]:
        """Tags on every AWS resource: the program's own, plus the user's."""
        return {**self.program_tags, **self.tags}


KEYS = {k.name: k for k in keys_of(StackConfig)}


def pool_switches(monitoring: bool, open_webui: bool, aiperf: bool, models: tuple[ModelRequest, ...], *,
                  gateway: bool, keys: tuple[ApiKey, ...]) -> dict[str, bool]:
    """What decides which CPU-pool workloads run (planning/workloads.py PoolWorkload.when)."""
    return {"monitoring": monitoring, "open_webui": open_webui, "aiperf": aiperf,
            HTTP_ADD_ON: needs_interceptor(models, monitoring), GATEWAY: gateway,
            RATE_LIMITS: gateway and needs_rate_limits(keys)}


def readme_config_table() -> str:
    """The README's configuration table: every key, its default and meaning."""
    return readme_table(StackConfig, "key")


# ---------------------------------------------------------------------------------------------- parsing

REGION_RE = re.compile(r"[a-z]{2,4}(-gov|-iso[a-z]*)?(-[a-z]+)+-\d")
# Partitions the program is built for: every ARN it writes takes the partition from `aws.get_partition()`. China
# (aws-cn) and the ISO partitions differ in more than ARNs (service principals such as ec2.amazonaws.com.cn, the S3
# endpoint name, EKS Pod Identity availability), none of which is built or tested here.
UNSUPPORTED_REGION_PREFIXES = {"cn-": "aws-cn", "us-isob-": "aws-iso-b", "us-isof-": "aws-iso-f",
                               "eu-isoe-": "aws-iso-e", "us-iso-": "aws-iso", "eusc-": "aws-eusc"}


def region_problem(region: Any) -> str | None:
    """What is wrong with `aws:region`, if anything."""
    if not region:
        return "aws:region: not set; run `pulumi config set aws:region us-west-2` (or your region)"
    if not REGION_RE.fullmatch(str(region)):
        return f"aws:region: {show(region)} is not an AWS region name; allowed: e.g. us-west-2"
    if str(region).startswith(tuple(UNSUPPORTED_REGION_PREFIXES)):
        # the longest matching prefix names the partition (us-isob- before us-iso-)
        prefix = max((p for p in UNSUPPORTED_REGION_PREFIXES if str(region).startswith(p)), key=len)
        return (f"aws:region: {show(region)} is in the {UNSUPPORTED_REGION_PREFIXES[prefix]} partition, which "
                "nim-on-eks does not support; allowed: a region of the aws (commercial) or aws-us-gov (GovCloud) "
                "partition")
    return None


def default_cluster_name(project: str, stack: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"{project}-{stack}".lower()).strip("-")[:32].rstrip("-")


def parse_config(
    raw: dict[str, Any], secret_keys: set[str], project: str, stack: str, catalog: Catalog
) -> StackConfig:
    """Validate raw config (`{"nim-on-eks:key": "value", "aws:region": ...}`, values as the engine gives them).

    Pure: no Pulumi runtime needed. Raises ConfigError with every problem found.
    """
    prefix = NAMESPACE + ":"
    given = {k[len(prefix):]: raw[k] for k in sorted(raw) if k.startswith(prefix)}
    secret = {k[len(prefix):] for k in secret_keys if k.startswith(prefix)}

    # each key on its own
    problems = unknown_keys(given, list(KEYS), prefix, f"known keys: {', '.join(KEYS)}")
    values = parse_keys(KEYS.values(), given, secret, "", problems)
    region = raw.get("aws:region")
    if problem := region_problem(region):
        problems.append(problem)

    # the benchmark switch's old name: read into the new one, unless both are set
    warnings: list[str] = []
    if "genai_perf" in given and "aiperf" in given:
        problems.append(f"genai_perf: set together with aiperf ({show(given['genai_perf'])} and "
                        f"{show(given['aiperf'])}); genai_perf is the old name of aiperf; allowed: aiperf alone "
                        "(`pulumi config rm genai_perf`)")
    elif "genai_perf" in values and values["genai_perf"] is not None:
        values["aiperf"] = values["genai_perf"]
        warnings.append("genai_perf is deprecated: it is read as aiperf (the benchmark pod now runs AIPerf, "
                        f"NVIDIA's successor to GenAI-Perf); run `pulumi config set aiperf "
                        f"{str(values['genai_perf']).lower()}` and `pulumi config rm genai_perf`")

    # what relates keys; a key that did not parse counts as its default here (its problem is reported already)
    def valid(name: str) -> Any:
        return values.get(name, KEYS[name].default)

    models: tuple[ModelRequest, ...] = ()
    if "nim_models" in values:
        specs, found = parse_models(values["nim_models"], catalog, valid("gpu_capacity_types"),
                                    valid("scale_to_zero_idle_minutes"))
        models, unfit = fit_models(specs, catalog, valid("gpu_instance_families"),
                                   load_instances().in_families(GPU_FAMILIES))
        problems += found + unfit

    switches = pool_switches(valid("monitoring"), valid("open_webui"), valid("aiperf"), models,
                             gateway=valid("gateway"), keys=valid("api_keys"))
    if "core_instance_type" in values and isinstance(values.get("core_node_count"), int):
        core_type = load_instances().types[values["core_instance_type"]]
        if short := core_shortfall(core_type, values["core_node_count"], switches):
            problems.append(
                f"core_instance_type: {core_type.name} cannot hold what runs on the core nodes (Karpenter, CoreDNS, "
                f"the CSI controllers, the node DaemonSets): {'; '.join(short)}; allowed: a type with more "
                "allocatable CPU, memory or pods, such as t4g.medium")
    if "cpu_instance_families" in values:
        pool = cpu_pool(values["cpu_instance_families"], valid("cpu_capacity_types"), valid("cpu_limit"))
        # the pre-cache Jobs too, while a model is pre-cached: they run the NIM image, amd64 only
        jobs = [PRECACHE_JOB] if any(m.precache and catalog.models[m.name].precache for m in models) else []
        for w in unplaceable(cpu_pool_workloads(switches) + jobs, pool.arches):
            suggestion = next(f for f in DEFAULT_CPU_FAMILIES if load_instances().family_arch()[f] in w.arches)
            why = w.when or ("a model with precache" if w is PRECACHE_JOB else "always")
            problems.append(
                f"cpu_instance_families: {', '.join(pool.families)} give {', '.join(pool.arches)} nodes only, but "
                f"{w.name} ({why}) runs on {', '.join(w.arches)} only; allowed: add a family of that "
                f"architecture, such as {suggestion}")
        placeable = [w for w in cpu_pool_workloads(switches) if set(w.arches) & set(pool.arches)]
        try:
            size_cpu_pool(placeable, load_instances().in_families(pool.families), node_daemonsets(switches),
                          lambda t: t.on_demand)
        except CpuPoolFitError as err:
            problems.append(f"cpu_instance_families: {err}; allowed: add a family with larger instance types")

    if isinstance(values.get("core_node_count"), int) and isinstance(values.get("core_node_max"), int):
        if values["core_node_count"] > values["core_node_max"]:
            problems.append(
                f"core_node_count: {values['core_node_count']} is greater than core_node_max "
                f"{values['core_node_max']}; allowed: core_node_count <= core_node_max"
            )

    if values.get("image_digests"):
        own = {catalog.models[m.name].image + ":" + m.image_tag for m in models} | (
            {versions.OPEN_WEBUI_IMAGE} if valid("open_webui") else set()) | (
            {versions.AIPERF_IMAGE} if valid("aiperf") else set()) | (
            {versions.REDIS_IMAGE} if switches[RATE_LIMITS] else set())
        problems += digest_problems(values["image_digests"], own,
                                    stack_charts(valid("monitoring"), switches[HTTP_ADD_ON], valid("gateway")))

    if values.get("certificate_arn") and not region_problem(region):
        if problem := certificate_problem(values["certificate_arn"], str(region)):
            problems.append(problem)

    cluster_name = values.get("cluster_name") or default_cluster_name(project, stack)
    if values.get("cluster_name") is None and not re.fullmatch(CLUSTER_NAME_RE, cluster_name):
        problems.append(
            f"cluster_name: the default '{cluster_name}' (from project and stack) is not a valid name; "
            "set cluster_name to 2-32 lowercase letters, digits and '-'"
        )

    if problems:
        raise ConfigError(problems)
    return build(StackConfig, {**values, "nim_models": models, "cluster_name": cluster_name},
                 warnings=tuple(warnings), project=project, stack=stack, region=str(region), catalog=catalog)


def _raw_runtime_config() -> tuple[dict[str, Any], set[str]]:
    """All config the engine passed to this program, with the set of keys marked secret."""
    from pulumi.runtime import config as rc

    raw: dict[str, Any] = {}
    # The SDK offers no call that lists every key (needed to name unknown ones): read the two places it reads
    # itself, the engine's environment and `runtime.config.CONFIG` (what set_all_config fills, e.g. under mocks).
    secrets = {k.replace(":config:", ":") for k in rc.get_config_secret_keys_env()}
    for source in (rc.get_config_env(), rc.CONFIG.get()):
        for key_name, value in source.items():
            raw[key_name.replace(":config:", ":")] = value
            if pulumi.runtime.is_config_secret(key_name):  # the public API, not the SDK's private key set
                secrets.add(key_name.replace(":config:", ":"))
    return raw, secrets


def load_config(catalog: Catalog) -> tuple[StackConfig, pulumi.Output[str]]:
    """Read and validate this stack's config; returns it with the NGC API key as a Pulumi secret."""
    raw, secret_keys = _raw_runtime_config()
    cfg = parse_config(raw, secret_keys, pulumi.get_project(), pulumi.get_stack(), catalog)
    # a secret Output keeps the key secret in every output derived from it, whatever the stack file holds
    return cfg, pulumi.Output.secret(cfg.ngc_api_key.value)
