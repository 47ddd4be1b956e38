"""Offline conformance gates: every object the program would create is checked against the real schemas.

1. Kubernetes objects: `kubernetes-validate`, strict, at the cluster's Kubernetes version.
2. Custom resources: the upstream CRD's openAPIV3Schema (../shared/reference); Helm values: every key path must
   exist in the chart's own values.yaml at the pinned version, except below documented free-form maps.
3. IAM policy documents: parliament, no unknown actions or malformed statements.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import kubernetes_validate
import yaml
from parliament import analyze_policy_string

from tools.mockrun import Plan, Resource

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference"
SKIP_REASON = (
    f"{REFERENCE} is absent: the upstream CRDs and chart values.yaml files live beside the clone in CI "
    "(see ../shared/reference/README.md)"
)

# pulumi-kubernetes types that are not Kubernetes objects themselves.
NOT_OBJECTS = {"kubernetes:helm.sh/v3:Release", "pulumi:providers:kubernetes"}


# ------------------------------------------------------------------------------------ 1. Kubernetes objects


def kubernetes_objects(plan: Plan) -> list[tuple[Resource, dict[str, Any]]]:
    """(resource, manifest) for every Kubernetes object in the plan, built from the inputs the engine receives."""
    found = []
    for r in plan.resources:
        if not r.type.startswith("kubernetes:") or r.type in NOT_OBJECTS:
            continue
        found.append((r, manifest(r)))
    return found


def manifest(r: Resource) -> dict[str, Any]:
    _, group_version, kind = r.type.split(":")
    group, version = group_version.split("/")
    api_version = version if group == "core" else f"{group}/{version}"
    # the schema sees the real shapes: a secret's stringData is a map, not the "[secret]" mask
    inputs = r.revealed or r.inputs
    body = {k: v for k, v in inputs.items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": inputs.get("apiVersion", api_version), "kind": inputs.get("kind", kind), **body}


def is_builtin(m: dict[str, Any]) -> bool:
    group = m["apiVersion"].rpartition("/")[0]
    return group == "" or "." not in group or group.endswith(".k8s.io")


def validate_kubernetes(m: dict[str, Any], version: str) -> list[str]:
    try:
        kubernetes_validate.validate(m, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = "/".join(str(p) for p in err.path)
        return [f"{m['kind']}/{m['metadata'].get('name')}: {path}: {err.message}"]
    except kubernetes_validate.SchemaNotFoundError as err:
        return [f"{m['kind']}: no schema ({err})"]
    return []


# ---------------------------------------------------------------------------------------- 2a. CRD schemas


@functools.lru_cache(maxsize=None)
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema for every CRD in the reference folder."""
    schemas = {}
    for path in sorted(REFERENCE.rglob("*.yaml")):
        if path.name == "values.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for v in spec["versions"]:
                schemas[(f"{spec['group']}/{v['name']}", spec["names"]["kind"])] = v["schema"]["openAPIV3Schema"]
    return schemas


def _strict(schema: Any) -> Any:
    """OpenAPI v3 (structural) -> JSON Schema that rejects unknown fields, as the API server prunes/rejects them."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if k not in ("x-kubernetes-validations", "description")}
    if "properties" in schema and "additionalProperties" not in schema and not schema.get(
        "x-kubernetes-preserve-unknown-fields"
    ):
        out["additionalProperties"] = False
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def validate_custom_resource(m: dict[str, Any]) -> list[str]:
    schema = crd_schemas().get((m["apiVersion"], m["kind"]))
    if schema is None:
        return [f"{m['apiVersion']} {m['kind']}: no CRD in {REFERENCE}"]
    body = copy.deepcopy(m)
    validator = jsonschema.Draft7Validator(_strict(schema))
    return [
        f"{m['kind']}/{m['metadata'].get('name')}: {'/'.join(map(str, e.path))}: {e.message}"
        for e in validator.iter_errors(body)
    ]


# ------------------------------------------------------------------------------------------ 2b. Helm values


def values_key_errors(values: Any, chart_values: Any, free_form: Iterable[str] = (), path: str = "") -> list[str]:
    """Every key path in `values` must exist in the chart's values.yaml; below a free-form path anything goes."""
    free = set(free_form)
    errors = []
    if not isinstance(values, dict):
        return errors
    for key, value in values.items():
        here = f"{path}.{key}" if path else key
        if here in free or _matches_free(here, free):
            continue
        if not isinstance(chart_values, dict) or key not in chart_values:
            errors.append(f"{here}: not a key of the chart's values.yaml")
            continue
        if isinstance(value, dict) and isinstance(chart_values[key], dict):
            if not chart_values[key]:
                continue  # an empty map in the chart ({}) is documented as free-form
            errors.extend(values_key_errors(value, chart_values[key], free, here))
    return errors


def _matches_free(path: str, free: set[str]) -> bool:
    return any(path.startswith(f + ".") for f in free)


# Chart (name, version) -> reference folder, and the value paths the chart documents as free-form.
CHART_REFERENCES: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("karpenter", "1.14.1"): ("karpenter-1.14.1", ("nodeSelector", "podAnnotations", "podLabels", "affinity",
                                                   "tolerations", "controller.resources", "controller.env")),
    ("nvidia-device-plugin", "0.20.0"): ("nvidia-device-plugin-0.20.0", ("nodeSelector", "affinity",
                                                                         "tolerations", "resources")),
    ("kube-prometheus-stack", "88.5.3"): ("kube-prometheus-stack-88.5.3", (
        "prometheus.prometheusSpec.affinity", "prometheus.prometheusSpec.resources",
        "prometheus.prometheusSpec.storageSpec", "alertmanager.alertmanagerSpec.affinity",
        "alertmanager.alertmanagerSpec.resources", "grafana.affinity", "grafana.resources",
        "prometheusOperator.affinity",
        # Alertmanager's own configuration file, not the chart's schema (tests/test_alerts.py checks it)
        "alertmanager.config")),
    ("prometheus-adapter", "5.3.0"): ("prometheus-adapter-5.3.0", ("affinity", "resources", "rules.custom")),
}
# Sub-charts whose values live under a key of the parent chart: (chart, key) -> the sub-chart's reference folder.
SUBCHART_REFERENCES = {("kube-prometheus-stack", "grafana"): "grafana-12.11.1"}
# dcgm-exporter's values.yaml is not in ../shared/reference; these key paths were checked by hand against
# NVIDIA/dcgm-exporter deployment/values.yaml @ 691c9276 (chart 4.8.2). Anything else is refused.
DCGM_EXPORTER_KEYS = {"nodeSelector", "tolerations", "affinity", "resources", "serviceMonitor.enabled",
                      "serviceMonitor.interval", "serviceMonitor.additionalLabels", "arguments", "podLabels"}


def helm_releases(plan: Plan) -> list[tuple[Resource, str, str]]:
    """(release, chart name, version) for every Helm release in the plan."""
    return [(r, r.inputs["chart"].rstrip("/").rsplit("/", 1)[-1], r.inputs["version"])
            for r in plan.of_type("kubernetes:helm.sh/v3:Release")]


def _leaf_paths(values: Any, path: str = "") -> list[str]:
    if not isinstance(values, dict) or not values:
        return [path]
    return [p for k, v in values.items() for p in _leaf_paths(v, f"{path}.{k}" if path else k)]


def release_values_errors(release: Resource, chart: str, version: str) -> list[str]:
    values = release.inputs.get("values", {})
    if (chart, version) == ("dcgm-exporter", "4.8.2"):
        free = {"nodeSelector", "tolerations", "affinity", "resources", "serviceMonitor.additionalLabels",
                "podLabels", "arguments"}
        return [f"{release.name} ({chart} {version}): {p}: not a key we checked in its values.yaml"
                for p in _leaf_paths(values)
                if p not in DCGM_EXPORTER_KEYS and not any(p.startswith(f + ".") for f in free)]
    reference = CHART_REFERENCES.get((chart, version))
    if reference is None:
        return [f"{release.name}: no reference values.yaml for chart {chart} {version}"]
    folder, free_form = reference
    chart_vals = chart_values(folder)
    for (parent, key), sub_folder in SUBCHART_REFERENCES.items():
        if parent == chart:  # the parent's own keys for the sub-chart, plus the sub-chart's values.yaml
            chart_vals = {**chart_vals, key: {**chart_values(sub_folder), **(chart_vals.get(key) or {})}}
    return [f"{release.name} ({chart} {version}): {e}" for e in values_key_errors(values, chart_vals, free_form)]


def chart_values(folder: str) -> dict[str, Any]:
    return yaml.safe_load((REFERENCE / folder / "values.yaml").read_text())


# --------------------------------------------------------------------------------------------------- 3. IAM

# Where policy documents sit in the inputs of AWS resources: (type, input key, kind of policy).
POLICY_INPUTS = [
    ("aws:iam/role:Role", "assumeRolePolicy", "trust"),
    ("aws:iam/policy:Policy", "policy", "identity"),
    ("aws:iam/rolePolicy:RolePolicy", "policy", "identity"),
    ("aws:sqs/queuePolicy:QueuePolicy", "policy", "resource"),
    ("aws:efs/fileSystemPolicy:FileSystemPolicy", "policy", "resource"),
]
# Findings that mean the document is wrong. Parliament's advice is not: RESOURCE_STAR on Describe* calls (which
# have no resource-level permissions), and RESOURCE_MISMATCH where, as in Karpenter's upstream policy, the
# resource types one action touches are granted across several statements with different conditions (and public
# SSM parameters, whose ARNs have an empty account field).
BLOCKING = {"UNKNOWN_ACTION", "UNKNOWN_PREFIX", "MALFORMED", "MALFORMED_JSON", "UNKNOWN_PRINCIPAL",
            "UNKNOWN_FEDERATION_SOURCE", "UNKNOWN_OPERATOR", "MISMATCHED_TYPE", "UNKNOWN_CONDITION_FOR_ACTION",
            "INVALID_ARN"}


OIDC_PROVIDER_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:oidc-provider/[\w./-]+")


def policy_documents(plan: Plan) -> list[tuple[Resource, str, dict[str, Any]]]:
    docs = []
    for type_, key, kind in POLICY_INPUTS:
        for r in plan.of_type(type_):
            raw = r.inputs.get(key)
            if raw is not None:
                docs.append((r, kind, json.loads(raw) if isinstance(raw, str) else raw))
    return docs


def lint_policy(doc: dict[str, Any], kind: str = "identity") -> list[str]:
    """Blocking parliament findings. Trust and resource policies carry a Principal and may have no Resource."""
    findings = analyze_policy_string(json.dumps(doc)).findings
    problems = []
    for f in findings:
        if f.issue not in BLOCKING:
            continue
        if kind != "identity" and f.issue == "MALFORMED" and "Resource" in str(f.detail):
            continue
        # parliament knows only public identity providers; an IAM OIDC provider (IRSA) is a valid principal
        if f.issue == "UNKNOWN_FEDERATION_SOURCE" and OIDC_PROVIDER_ARN.fullmatch(str(f.detail)):
            continue
        problems.append(f"{f.issue}: {f.detail}")
    return problems
