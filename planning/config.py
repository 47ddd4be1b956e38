"""Typed, validated stack configuration: the one place that reads `pulumi.Config`.

Every key lives in the `nim-on-eks` namespace and is snake_case, as users type it with `pulumi config set`.
Validation collects every problem before anything is created and raises them together as one
`pulumi.RunError`, each naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import pulumi

from planning import versions
from planning.catalog import Catalog
from planning.gpus import GPU_FAMILIES, FitError, fit_model
from planning.instances import load_instances

NAMESPACE = "nim-on-eks"

# A StatefulSet's pods carry the label controller-revision-hash=<name>-<10 chars>, which must fit in 63
# characters, so a StatefulSet name may have at most 52.
MAX_WORKLOAD_NAME = 52
WORKLOAD_PREFIX = "nim-llm-"


class ConfigError(pulumi.RunError):
    """All configuration problems, reported together before any resource is created."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"Invalid stack configuration ({len(self.problems)} problem"
            f"{'s' if len(self.problems) != 1 else ''}); nothing was created:\n{lines}"
        )


class _Bad(ValueError):
    """A value that does not parse; the message says what is allowed."""


# ---------------------------------------------------------------------------------------------- parsers


def _bool(raw: Any) -> bool:
    value = str(raw).strip().lower()
    if value in ("true", "false"):
        return value == "true"
    raise _Bad("allowed: true or false")


def _int(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if isinstance(raw, bool):
            raise _Bad(f"allowed: a whole number from {lo} to {hi}")
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise _Bad(f"allowed: a whole number from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise _Bad(f"allowed: a whole number from {lo} to {hi}")
        return value

    return parse


def _int_choice(options: tuple[int, ...]) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            value = None
        if value not in options:
            raise _Bad(f"allowed: one of {', '.join(map(str, options))}")
        return value

    return parse


def _float(lo: float, hi: float) -> Callable[[Any], float]:
    def parse(raw: Any) -> float:
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise _Bad(f"allowed: a number from {lo:g} to {hi:g}") from None
        if not lo <= value <= hi:
            raise _Bad(f"allowed: a number from {lo:g} to {hi:g}")
        return value

    return parse


def _regex(pattern: str, what: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def parse(raw: Any) -> str:
        if not isinstance(raw, str) or not compiled.fullmatch(raw):
            raise _Bad(f"allowed: {what}")
        return raw

    return parse


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: Any) -> str:
        if not isinstance(raw, str) or raw not in options:
            raise _Bad(f"allowed: one of {', '.join(options)}")
        return raw

    return parse


def vpc_cidr(raw: str) -> str:
    """A private IPv4 network between /16 and /20: room for large private subnets in up to 6 AZs."""
    try:
        net = ipaddress.IPv4Network(raw.strip(), strict=True)
    except ValueError as err:
        raise _Bad(f"not an IPv4 network in CIDR form ({err}); allowed: e.g. 10.0.0.0/16") from None
    if not net.is_private:
        raise _Bad("allowed: a private (RFC 1918) range such as 10.0.0.0/16")
    if not 16 <= net.prefixlen <= 20:
        raise _Bad("allowed: a prefix from /16 (AWS's largest VPC) to /20 (pods take VPC addresses)")
    return str(net)


def _tags(raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise _Bad('allowed: a map of strings, e.g. {"team": "ml", "cost-center": "42"}') from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        raise _Bad('allowed: a map of strings, e.g. {"team": "ml"}')
    bad = [k for k in value if not k or len(k) > 128 or k.lower().startswith(RESERVED_TAG_PREFIXES)]
    if bad or any(len(str(v)) > 256 for v in value.values()):
        raise _Bad(f"tag keys must be 1-128 characters and not start with {', '.join(RESERVED_TAG_PREFIXES)} "
                   "(AWS's and the ones Karpenter and Kubernetes set); values at most 256 characters")
    return {k: str(v) for k, v in value.items()}


# Tag prefixes AWS reserves, and those Karpenter sets itself (its EC2NodeClass refuses them as extra tags).
RESERVED_TAG_PREFIXES = ("aws:", "kubernetes.io/cluster", "karpenter.sh/", "karpenter.k8s.aws/", "eks:")


PRINCIPAL_RE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+")


def _principal_arns(raw: str) -> tuple[str, ...]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and PRINCIPAL_RE.fullmatch(v) for v in value):
        raise _Bad("allowed: a JSON list of IAM role or user ARNs, e.g. [\"arn:aws:iam::123456789012:role/admin\"]")
    return tuple(value)


def _names(raw: Any) -> Any:
    """A JSON list, or comma-separated names, or one name, as a list (anything else as it came)."""
    if isinstance(raw, str):
        try:
            value = json.loads(raw) if raw else []
        except json.JSONDecodeError:
            value = [part.strip() for part in raw.split(",") if part.strip()]
    else:
        value = raw
    return [value] if isinstance(value, str) else value


def _list_of(options: tuple[str, ...], what: str) -> Callable[[Any], tuple[str, ...]]:
    """A JSON list (or comma-separated names) of distinct values from `options`."""

    def parse(raw: Any) -> tuple[str, ...]:
        value = _names(raw)
        if (not isinstance(value, list) or not value or len(set(value)) != len(value)
                or not all(isinstance(v, str) and v in options for v in value)):
            raise _Bad(f"allowed: a non-empty list of distinct {what} from {', '.join(options)}")
        return tuple(value)

    return parse


CAPACITY_TYPES = ("spot", "on-demand")

# EKS control-plane log types (EKS API LogSetup.types), in the order the cluster is given them.
CLUSTER_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
# Retention periods CloudWatch Logs accepts (PutRetentionPolicy; pulumi-aws LogGroup.retention_in_days). Its 0,
# "never expire", is left out on purpose: logs kept forever are the cost this key exists to bound.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)


def _log_types(raw: Any) -> tuple[str, ...]:
    """`cluster_log_types`: a JSON list (or comma-separated names) of distinct log types; empty turns logging off."""
    value = _names(raw)
    if (not isinstance(value, list) or len(set(map(str, value))) != len(value)
            or not all(isinstance(v, str) and v in CLUSTER_LOG_TYPES for v in value)):
        raise _Bad(f"allowed: a list of distinct EKS control-plane log types from {', '.join(CLUSTER_LOG_TYPES)}, "
                   "or [] to send none")
    return tuple(t for t in CLUSTER_LOG_TYPES if t in value)


def _log_retention(raw: Any) -> int:
    try:
        return _int_choice(LOG_RETENTION_DAYS)(raw)
    except _Bad as bad:
        raise _Bad(f"{bad} (the periods CloudWatch Logs accepts; 0, never expire, is not offered)") from None

# ------------------------------------------------------------------------------------------- key specs


@dataclass(frozen=True)
class KeySpec:
    """One config key: how to parse it, its default (None: required or computed) and what it means."""

    parse: Callable[[Any], Any]
    default: Any
    doc: str
    secret: bool = False


CLUSTER_NAME_RE = r"[a-z][a-z0-9-]{0,30}[a-z0-9]"
# An address SNS can email: local part and a dotted domain with a letter TLD, at most 254 characters (RFC 5321).
EMAIL_RE = (r"(?=.{6,254}$)[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
INSTANCE_TYPE_RE = r"[a-z][a-z0-9-]*\.[a-z0-9]+"

KEYS: dict[str, KeySpec] = {
    "nim_models": KeySpec(
        lambda raw: raw,  # parsed by parse_models, which needs the catalog and the GPU families
        None,
        "Models to serve: JSON list of catalog names or objects {name, gpus, min_replicas, max_replicas, "
        "image_tag, capacity_types, target_requests_running, env}. Required.",
    ),
    "ngc_api_key": KeySpec(
        lambda raw: raw, None, "NGC API key (secret) used to pull NIM images and model weights. Required.", True
    ),
    "cluster_name": KeySpec(
        _regex(CLUSTER_NAME_RE, "2-32 lowercase letters, digits and '-', starting with a letter"),
        None,
        "EKS cluster name; also names the VPC, queue and roles. Default: `<project>-<stack>`.",
    ),
    "eks_version": KeySpec(
        _choice(versions.SUPPORTED_EKS_VERSIONS),
        versions.DEFAULT_EKS_VERSION,
        "Kubernetes version of the cluster (those the pinned Karpenter supports).",
    ),
    # Default: `audit` (who did what to which object: the one record nothing in the cluster can rebuild after the
    # fact, and the bulk of the bill) and `authenticator` (IAM identity -> Kubernetes user for every access entry;
    # small). Not `api`, `controllerManager`, `scheduler`: component diagnostics, worth switching on while
    # debugging, not worth paying for every day. Volumes and prices: data/prices.yaml, components/cost.py.
    "cluster_log_types": KeySpec(
        _log_types,
        ("audit", "authenticator"),
        "EKS control-plane log types sent to CloudWatch Logs (api, audit, authenticator, controllerManager, "
        "scheduler); [] sends none and creates no log group.",
    ),
    # 30 days: long enough to investigate what is noticed within a month, while storage stays small next to
    # ingestion (each GB is kept about a month, $0.03, after costing $0.50 to ingest: ~6%; at 365 days ~70%).
    # Compliance regimes asking for a year of audit trail set 365 or 400.
    "cluster_log_retention_days": KeySpec(
        _log_retention, 30, "Days CloudWatch keeps the control-plane logs (/aws/eks/<cluster>/cluster)."
    ),
    "vpc_cidr": KeySpec(vpc_cidr, "10.0.0.0/16", "VPC address range (private, /16 to /20)."),
    "availability_zones": KeySpec(_int(2, 6), 3, "Number of availability zones (one private and one public subnet each)."),
    "single_nat_gateway": KeySpec(_bool, True, "One NAT gateway for all AZs (cheaper) instead of one per AZ."),
    "core_instance_type": KeySpec(
        _regex(INSTANCE_TYPE_RE, "an EC2 instance type such as m5.xlarge"),
        "m5.xlarge",
        "Instance type of the core node group (Karpenter, CoreDNS, monitoring; never GPUs).",
    ),
    "core_node_count": KeySpec(_int(2, 20), 2, "Core nodes (desired and minimum); Karpenter's two replicas need two."),
    "core_node_max": KeySpec(_int(2, 50), 4, "Most core nodes the node group may scale to."),
    "core_disk_gb": KeySpec(_int(20, 1000), 100, "Encrypted gp3 root volume of each core node, in GiB."),
    "cluster_admins": KeySpec(
        _principal_arns,
        (),
        "IAM roles or users given cluster-admin access entries (the identity running `pulumi up` is admin anyway).",
    ),
    "gpu_instance_families": KeySpec(
        _list_of(GPU_FAMILIES, "EC2 GPU families"),
        ("g5", "g6", "g6e"),
        "EC2 families Karpenter may launch for models (g5=A10G, g6=L4, g6e=L40S, p4d/p4de=A100, p5=H100, p5en=H200).",
    ),
    "gpu_capacity_types": KeySpec(
        _list_of(CAPACITY_TYPES, "capacity types"),
        CAPACITY_TYPES,
        "Capacity types for GPU nodes; with both, Karpenter prefers spot and falls back to on-demand.",
    ),
    "gpu_limit": KeySpec(_int(1, 1024), 16, "Most GPUs all GPU nodes together may have (NodePool limit)."),
    "ami_alias": KeySpec(
        _regex(r"al2023@(latest|v\d{8})", "al2023@vYYYYMMDD (or al2023@latest, which re-images nodes on every release)"),
        versions.GPU_AMI_ALIAS,
        "EKS-optimized AL2023 AMI release of Karpenter's nodes (the NVIDIA variant is picked for GPU instances).",
    ),
    # 20: the AL2023 (NVIDIA) AMI's root snapshot (awslabs/amazon-eks-ami templates/al2023/template.json); images and
    # the kubelet live on the local NVMe (RAID0), so the root volume needs the OS and logs only.
    "gpu_root_volume_gb": KeySpec(_int(20, 4000), 40, "Encrypted gp3 root volume of each GPU node, GiB: the OS only "
                                  "(images and the kubelet are on the local NVMe)."),
    "efs_backups": KeySpec(_bool, False, "AWS Backup of the EFS model cache (it can always be downloaded again)."),
    "efs_ia_after_days": KeySpec(
        _int_choice((0, 1, 7, 14, 30, 60, 90, 180, 270, 365)),
        0,
        "Move cache files unread this many days to EFS Infrequent Access; 0 never (IA slows cold starts).",
    ),
    "nim_namespace": KeySpec(
        _regex(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", "a Kubernetes namespace name (lowercase letters, digits, '-')"),
        "nim",
        "Namespace of the NIM servers (and GenAI-Perf).",
    ),
    "prometheus_retention": KeySpec(
        _regex(r"[1-9][0-9]*(h|d|w|y)", "a Prometheus duration such as 15d, 72h or 4w"),
        "15d",
        "How long Prometheus keeps metrics (also capped at 85% of its volume).",
    ),
    "prometheus_volume_gb": KeySpec(_int(10, 4000), 50, "Encrypted gp3 volume for Prometheus data, GiB."),
    "alert_ttft_p90_seconds": KeySpec(
        _float(0.05, 600), 3.0, "Alert when a model's p90 time to first token stays above this for 10 minutes."
    ),
    "alert_email": KeySpec(
        _regex(EMAIL_RE, "an email address such as ops@example.com"),
        None,
        "Email address Alertmanager's alerts go to, through an encrypted SNS topic (AWS first sends a confirmation "
        "email that must be accepted). Unset: alerts have no receiver, and `pulumi up` warns.",
    ),
    "hourly_budget": KeySpec(
        _float(0.01, 100000), None,
        "USD per hour the stack may cost at max_replicas; above it `pulumi up` warns and the plan fails.",
    ),
    "tags": KeySpec(_tags, {}, "Extra AWS tags for every AWS resource (JSON map)."),
    "monitoring": KeySpec(_bool, True, "Prometheus, Grafana, the NIM dashboard and the HPA metric."),
    "open_webui": KeySpec(_bool, True, "Open WebUI chat front end for the deployed models."),
    "genai_perf": KeySpec(_bool, False, "A GenAI-Perf pod for interactive benchmarks."),
}

REGION_RE = re.compile(r"[a-z]{2,4}(-gov|-iso[a-z]*)?(-[a-z]+)+-\d")
# Partitions the program is built for: every ARN it writes takes the partition from `aws.get_partition()`. China
# (aws-cn) and the ISO partitions differ in more than ARNs (service principals such as ec2.amazonaws.com.cn, the S3
# endpoint name, EKS Pod Identity availability), none of which is built or tested here.
UNSUPPORTED_REGION_PREFIXES = {"cn-": "aws-cn", "us-isob-": "aws-iso-b", "us-isof-": "aws-iso-f",
                               "eu-isoe-": "aws-iso-e", "us-iso-": "aws-iso", "eusc-": "aws-eusc"}


# ---------------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelRequest:
    """One entry of `nim_models`, resolved against the catalog and fitted to the allowed GPU families."""

    name: str  # catalog name, e.g. meta/llama3-8b-instruct
    k8s_name: str  # nim-llm-<short name>, the StatefulSet and Service name
    gpus: int  # GPUs per replica: as configured, or the count whose cheapest fitting instance costs least
    gpu_types: tuple[str, ...]  # GPU types that hold the model with `gpus` GPUs on the allowed families
    instance_types: tuple[str, ...]  # allowed instance types that fit one replica (cheapest first)
    capacity_types: tuple[str, ...]  # spot / on-demand for this model's nodes
    min_replicas: int
    max_replicas: int
    image_tag: str  # the catalog's pinned tag unless overridden
    target_requests_running: int  # HPA target: average in-flight requests per replica
    env: tuple[tuple[str, str], ...]  # extra container environment


def _env(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) and isinstance(v, (str, int, float))
        and not isinstance(v, bool) for k, v in raw.items()
    ):
        raise _Bad('allowed: a map of environment variable names to strings, e.g. {"NIM_MAX_MODEL_LEN": "8192"}')
    reserved = sorted(set(raw) & RESERVED_ENV)
    if reserved:
        raise _Bad(f"{', '.join(reserved)} {'is' if len(reserved) == 1 else 'are'} set by nim-on-eks")
    return tuple(sorted((k, str(v)) for k, v in raw.items()))


RESERVED_ENV = {"NGC_API_KEY", "NIM_CACHE_PATH", "NIM_SERVER_PORT", "NIM_SERVED_MODEL_NAME"}


MODEL_KEYS: dict[str, Callable[[Any], Any]] = {
    "gpus": _int(1, 16),
    "min_replicas": _int(1, 50),
    "max_replicas": _int(1, 50),
    "image_tag": _regex(r"(?!latest$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", "a pinned image tag (not 'latest')"),
    "capacity_types": _list_of(CAPACITY_TYPES, "capacity types"),
    "target_requests_running": _int(1, 256),
    "env": _env,
}
MODEL_DEFAULTS = {"min_replicas": 1, "max_replicas": 5, "target_requests_running": 5}


def k8s_name_for(model_name: str) -> str:
    """`meta/llama-3.1-8b-instruct` -> `nim-llm-llama-3-1-8b-instruct` (a DNS-1035 label)."""
    short = model_name.rsplit("/", 1)[-1].lower()
    return WORKLOAD_PREFIX + re.sub(r"[^a-z0-9-]+", "-", short).strip("-")


def _suggest(value: str, known: list[str]) -> str:
    close = difflib.get_close_matches(value, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _parse_models_value(raw: Any) -> Any:
    """JSON string or list from structured config; a bare name or comma-separated names are accepted too."""
    if isinstance(raw, list):
        return raw
    text = str(raw).strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if text.startswith(("[", "{")):
            raise _Bad("not valid JSON; allowed: a JSON list such as '[\"meta/llama3-8b-instruct\"]'") from None
        return [part.strip() for part in text.split(",") if part.strip()]


def parse_models(raw: Any, catalog: Catalog, families: tuple[str, ...], capacity_types: tuple[str, ...],
                 problems: list[str]) -> tuple[ModelRequest, ...]:
    key = "nim_models"
    try:
        items = _parse_models_value(raw)
    except _Bad as bad:
        problems.append(f"{key}: {_show(raw)} is {bad}")
        return ()
    if isinstance(items, (str, dict)):
        items = [items]
    if not isinstance(items, list) or not items:
        problems.append(
            f"{key}: {_show(raw)} is not a non-empty list; allowed: catalog names or objects with 'name', "
            f"e.g. '[\"meta/llama3-8b-instruct\"]'"
        )
        return ()

    models: list[ModelRequest] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            problems.append(f"{where}: {_show(item)} is neither a model name nor an object with 'name'")
            continue
        fields: dict[str, Any] = dict(MODEL_DEFAULTS)
        ok = True
        for k, v in item.items():
            if k == "name":
                continue
            if k not in MODEL_KEYS:
                allowed = ", ".join(["name", *MODEL_KEYS])
                problems.append(f"{where}.{k}: unknown key{_suggest(k, list(MODEL_KEYS))}; allowed: {allowed}")
                ok = False
                continue
            try:
                fields[k] = MODEL_KEYS[k](v)
            except _Bad as bad:
                problems.append(f"{where}.{k}: {_show(v)} is not valid; {bad}")
                ok = False
        name = item.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}.name: missing; allowed: a model name from models.yaml")
            continue
        if name not in catalog.models:
            problems.append(
                f"{where}.name: '{name}' is not in the model catalog{_suggest(name, sorted(catalog.models))}; "
                f"allowed: {', '.join(sorted(catalog.models))}, or add an entry to models.yaml"
            )
            continue
        k8s_name = k8s_name_for(name)
        if len(k8s_name) > MAX_WORKLOAD_NAME:
            problems.append(
                f"{where}.name: '{name}' gives the Kubernetes name '{k8s_name}' ({len(k8s_name)} characters); "
                f"allowed: at most {MAX_WORKLOAD_NAME} (a StatefulSet's pod labels must fit in 63)"
            )
            ok = False
        if k8s_name in seen:
            problems.append(
                f"{where}.name: '{name}' is listed twice (also {seen[k8s_name]}, both named '{k8s_name}'); "
                f"allowed: each model once"
            )
            ok = False
        seen.setdefault(k8s_name, where)
        if "min_replicas" in fields and "max_replicas" in fields and fields["min_replicas"] > fields["max_replicas"]:
            problems.append(
                f"{where}: min_replicas {fields['min_replicas']} is greater than max_replicas "
                f"{fields['max_replicas']}; allowed: min_replicas <= max_replicas"
            )
            ok = False
        wanted = fields.get("capacity_types", capacity_types)
        if not set(wanted) <= set(capacity_types):
            problems.append(
                f"{where}.capacity_types: {_show(list(wanted))} is not allowed by gpu_capacity_types "
                f"{_show(list(capacity_types))}; allowed: a subset of it"
            )
            ok = False
        if not ok:
            continue
        entry = catalog.models[name]
        try:
            fit = fit_model(entry.min_gpus, entry.cpu, entry.memory_gib, fields.get("gpus"), families,
                            load_instances().in_families(GPU_FAMILIES))
        except FitError as err:
            problems.append(f"{where}: {name} {err}")
            continue
        models.append(
            ModelRequest(
                name=name,
                k8s_name=k8s_name,
                gpus=fit.gpus,
                gpu_types=fit.gpu_types,
                instance_types=fit.instance_types,
                capacity_types=tuple(wanted),
                min_replicas=fields["min_replicas"],
                max_replicas=fields["max_replicas"],
                image_tag=fields.get("image_tag", entry.tag),
                target_requests_running=fields["target_requests_running"],
                env=fields.get("env", ()),
            )
        )
    return tuple(models)


# ---------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class StackConfig:
    """The validated stack configuration every component is built from."""

    project: str
    stack: str
    region: str
    cluster_name: str
    eks_version: str
    cluster_log_types: tuple[str, ...]
    cluster_log_retention_days: int
    vpc_cidr: str
    availability_zones: int
    single_nat_gateway: bool
    core_instance_type: str
    core_node_count: int
    core_node_max: int
    core_disk_gb: int
    cluster_admins: tuple[str, ...]
    gpu_instance_families: tuple[str, ...]
    gpu_capacity_types: tuple[str, ...]
    gpu_limit: int
    ami_alias: str
    gpu_root_volume_gb: int
    efs_backups: bool
    efs_ia_after_days: int
    nim_namespace: str
    prometheus_retention: str
    prometheus_volume_gb: int
    alert_ttft_p90_seconds: float
    alert_email: str | None
    hourly_budget: float | None
    tags: dict[str, str]
    monitoring: bool
    open_webui: bool
    genai_perf: bool
    models: tuple[ModelRequest, ...]
    catalog: Catalog = field(repr=False)

    @property
    def aws_tags(self) -> dict[str, str]:
        """Tags on every AWS resource: who made it and for which stack, plus the user's own."""
        return {"project": self.project, "stack": self.stack, "nim-on-eks/cluster": self.cluster_name, **self.tags}


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def parse_config(
    raw: dict[str, Any], secret_keys: set[str], project: str, stack: str, catalog: Catalog
) -> StackConfig:
    """Validate raw config (`{"nim-on-eks:key": "value", "aws:region": ...}`, values as the engine gives them).

    Pure: no Pulumi runtime needed. Raises ConfigError with every problem found.
    """
    problems: list[str] = []
    values: dict[str, Any] = {}
    prefix = NAMESPACE + ":"

    for full_key in sorted(raw):
        if full_key.startswith(prefix):
            key = full_key[len(prefix) :]
            if key not in KEYS:
                problems.append(
                    f"{full_key}: unknown key{_suggest(key, list(KEYS))}; known keys: {', '.join(KEYS)}"
                )

    for key, spec in KEYS.items():
        full_key = prefix + key
        if full_key not in raw:
            values[key] = spec.default
            continue
        value = raw[full_key]
        if spec.secret:
            continue
        if key == "nim_models":
            values[key] = value
            continue
        try:
            values[key] = spec.parse(value if not isinstance(value, str) else value.strip())
        except _Bad as bad:
            problems.append(f"{key}: {_show(value)} is not valid; {bad}")

    region = raw.get("aws:region")
    if not region:
        problems.append("aws:region: not set; run `pulumi config set aws:region us-west-2` (or your region)")
    elif not REGION_RE.fullmatch(str(region)):
        problems.append(f"aws:region: {_show(region)} is not an AWS region name; allowed: e.g. us-west-2")
    elif str(region).startswith(tuple(UNSUPPORTED_REGION_PREFIXES)):
        # the longest matching prefix names the partition (us-isob- before us-iso-)
        partition = UNSUPPORTED_REGION_PREFIXES[max((p for p in UNSUPPORTED_REGION_PREFIXES if str(region).startswith(p)),
                                                    key=len)]
        problems.append(f"aws:region: {_show(region)} is in the {partition} partition, which nim-on-eks does not "
                        "support; allowed: a region of the aws (commercial) or aws-us-gov (GovCloud) partition")

    api_key = prefix + "ngc_api_key"
    if not raw.get(api_key):
        problems.append(
            "ngc_api_key: not set; run `pulumi config set --secret ngc_api_key nvapi-...` "
            "(an NGC API key from ngc.nvidia.com)"
        )
    elif api_key not in secret_keys:
        problems.append(
            "ngc_api_key: stored in clear text in the stack file; allowed: a secret, set with "
            "`pulumi config set --secret ngc_api_key ...`"
        )

    if prefix + "nim_models" not in raw:
        problems.append(
            "nim_models: not set; allowed: a list of models from models.yaml, e.g. "
            "`pulumi config set nim_models '[\"meta/llama3-8b-instruct\"]'`"
        )
        models: tuple[ModelRequest, ...] = ()
    else:
        models = parse_models(values["nim_models"], catalog, _valid(values, "gpu_instance_families"),
                              _valid(values, "gpu_capacity_types"), problems)

    if isinstance(values.get("core_node_count"), int) and isinstance(values.get("core_node_max"), int):
        if values["core_node_count"] > values["core_node_max"]:
            problems.append(
                f"core_node_count: {values['core_node_count']} is greater than core_node_max "
                f"{values['core_node_max']}; allowed: core_node_count <= core_node_max"
            )

    cluster_name = values.get("cluster_name") or _default_cluster_name(project, stack)
    if values.get("cluster_name") is None and not re.fullmatch(CLUSTER_NAME_RE, cluster_name):
        problems.append(
            f"cluster_name: the default '{cluster_name}' (from project and stack) is not a valid name; "
            "set cluster_name to 2-32 lowercase letters, digits and '-'"
        )

    if problems:
        raise ConfigError(problems)

    computed = {"nim_models", "ngc_api_key", "cluster_name"}
    return StackConfig(
        project=project,
        stack=stack,
        region=str(region),
        cluster_name=cluster_name,
        models=models,
        catalog=catalog,
        **{key: values[key] for key in KEYS if key not in computed},
    )


def _valid(values: dict[str, Any], key: str) -> Any:
    """The parsed value, or the default where it did not parse (its problem is reported already)."""
    return values.get(key, KEYS[key].default)


def _default_cluster_name(project: str, stack: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"{project}-{stack}".lower()).strip("-")[:32].rstrip("-")


def _raw_runtime_config() -> tuple[dict[str, Any], set[str]]:
    """All config the engine passed to this program, with the set of keys marked secret."""
    from pulumi.runtime import config as rc

    raw: dict[str, Any] = {}
    secrets = {k.replace(":config:", ":") for k in rc.get_config_secret_keys_env()}
    for source in (rc.get_config_env(), rc.CONFIG.get()):
        for key, value in source.items():
            raw[key.replace(":config:", ":")] = value
            if pulumi.runtime.is_config_secret(key):  # the public API, not the SDK's private key set
                secrets.add(key.replace(":config:", ":"))
    return raw, secrets


def load_config(catalog: Catalog) -> tuple[StackConfig, pulumi.Output[str]]:
    """Read and validate this stack's config; returns it with the NGC API key as a Pulumi secret."""
    raw, secret_keys = _raw_runtime_config()
    cfg = parse_config(raw, secret_keys, pulumi.get_project(), pulumi.get_stack(), catalog)
    # require_secret keeps the key secret in every output derived from it, whatever the stack file holds.
    ngc_api_key = pulumi.Config(NAMESPACE).require_secret("ngc_api_key")
    return cfg, ngc_api_key
