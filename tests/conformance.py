"""Offline conformance gates: every object the program would create is checked against the real schemas.

1. Kubernetes objects: `kubernetes-validate`, strict, at the cluster's Kubernetes version.
2. Custom resources: the upstream CRD's openAPIV3Schema (../shared/reference) and its `x-kubernetes-validations`
   (CEL) rules; Helm values: every key path must exist in the chart's own values.yaml at the pinned version, except
   below documented free-form maps.
3. IAM policy documents: parliament, no unknown actions or malformed statements.

A support library, not a test module (pytest collects nothing here): the gates themselves are
tests/test_conformance.py, test_cel_rules.py and test_helm_render.py.
"""

from __future__ import annotations

import base64
import copy
import datetime
import functools
import ipaddress
import json
import re
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import kubernetes_validate
import yaml
from cel_expr_python import cel
from cel_expr_python.ext import ext_bindings, ext_optional, ext_strings
from google.protobuf import duration_pb2, timestamp_pb2
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


# API groups named *.k8s.io that Kubernetes does not serve: their CRDs come with a chart (Gateway API: with gateway-helm)
CRD_GROUPS_OF_K8S_IO = ("gateway.networking.k8s.io", "gateway.networking.x-k8s.io")


def is_builtin(m: dict[str, Any]) -> bool:
    group = m["apiVersion"].rpartition("/")[0]
    if group in CRD_GROUPS_OF_K8S_IO:
        return False
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
        for doc in yaml.load_all(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
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
    """What the API server checks of a custom resource on create: the structural schema (2a) and the CEL rules (2c)."""
    problems = validate_custom_resource_schema(m)
    if (m["apiVersion"], m["kind"]) in crd_schemas():
        problems += validate_custom_resource_rules(m)
    return problems


def validate_custom_resource_schema(m: dict[str, Any]) -> list[str]:
    """The structural schema alone, without its `x-kubernetes-validations` (those are section 2c)."""
    schema = crd_schemas().get((m["apiVersion"], m["kind"]))
    if schema is None:
        return [f"{m['apiVersion']} {m['kind']}: no CRD in {REFERENCE}"]
    body = copy.deepcopy(m)
    validator = jsonschema.Draft7Validator(_strict(schema))
    return [
        f"{m['kind']}/{m['metadata'].get('name')}: {'/'.join(map(str, e.path))}: {e.message}"
        for e in validator.iter_errors(body)
    ]


# ------------------------------------------------------------------------------ 2c. CRD validation rules (CEL)
#
# The API server also evaluates every `x-kubernetes-validations` rule of a CRD's schema, in CEL. They run here in
# cel-expr-python, the CEL project's Python binding of cel-cpp, with the CEL extension libraries that Kubernetes adds
# to the standard library and cel-cpp ships (strings, optional types, cel.bind). Kubernetes' own libraries
# (https://kubernetes.io/docs/reference/using-api/cel/#kubernetes-cel-libraries) cel-cpp lacks: of them, only the
# functions that rules in ../shared/reference call are implemented, in K8S_FUNCTIONS below.
# Semantics, from "Validation rules" in https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/
# custom-resource-definitions/#validation-rules and k8s.io/apiserver/pkg/cel (common/values.go, escaping.go):
# - a rule runs at the schema node that declares it, with `self` bound to that node's value (an array or a map as a
#   whole), and only where that value is present and not null;
# - values are typed as the API server types them: a `number` is a double; a string of format duration, date,
#   date-time or byte is a duration, timestamp or bytes; an object's property names are escaped (`namespace` is
#   `__namespace__`, `a-b` is `a__dash__b`) and its undeclared properties are not visible;
# - a rule that uses `oldSelf` is a transition rule, not evaluated on create; unless it sets `optionalOldSelf:
#   true`: then it is, with `oldSelf` = optional.none();
# - the message is what `messageExpression` yields if that is a non-blank one-line string, else `message`, else
#   "failed rule: <rule>"; a rule that fails at run time fails, as in the API server (the error is added);
# - a rule that does not compile is a problem reported by the gate, never skipped, unless UNSUPPORTED_RULES lists it.
# Not modelled: the cost budget, and the set/map semantics of `==` and `+` on lists with x-kubernetes-list-type.

# Rules this gate cannot evaluate, each with the reason; tests/test_cel_rules.py checks each is still in a reference.
UNSUPPORTED_RULES: dict[str, str] = {
    "size(self) == 0 || format.dns1123Label().validate(self) == null": (
        "Kubernetes format library: <Format>.validate() returns an optional<list<string>> on an opaque Format type; "
        "cel-expr-python 0.1.3 cannot return an optional or an opaque value from a Python function (UNIMPLEMENTED). "
        "Only Envoy Gateway's XBackend spec.port.name uses it, and no stack creates an XBackend."
    ),
}


def k8s_find(string: str, regex: str) -> str:
    """`<string>.find(<regex>)`: the first match, or '' (Kubernetes regex library, "find / findAll").

    Go's regexp (RE2) there, Python's `re` here: the same leftmost-first match for the patterns the rules use.
    """
    match = re.search(regex, string)
    return match.group(0) if match else ""


def k8s_is_ip(string: str) -> bool:
    """`isIP(<string>)`: an IPv4 or IPv6 address; not an IPv4-mapped IPv6 one, no zone, no leading zeros in IPv4
    octets (Kubernetes IP address library, "isIP"; Python's ipaddress rejects leading zeros too)."""
    if "%" in string:
        return False
    try:
        address = ipaddress.ip_address(string)
    except ValueError:
        return False
    return not (isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None)


K8S_FUNCTIONS = [
    cel.FunctionDecl("find", [cel.Overload("string_find_string", cel.Type.STRING, [cel.Type.STRING, cel.Type.STRING],
                                           is_member=True, impl=k8s_find)]),
    cel.FunctionDecl("isIP", [cel.Overload("is_ip", cel.Type.BOOL, [cel.Type.STRING], impl=k8s_is_ip)]),
]


class CelRuleError(Exception):
    """A rule (or messageExpression) that this gate cannot compile."""


@functools.lru_cache(maxsize=None)
def _cel_env() -> Any:
    return cel.NewEnv(
        variables={"self": cel.Type.DYN, "oldSelf": cel.Type.DYN},
        extensions=[ext_strings.ExtStrings(), ext_optional.ExtOptional(), ext_bindings.ExtBindings()],
        functions=K8S_FUNCTIONS,
    )


_STRING_LITERAL = re.compile(r"""'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*\"""", re.S)


def uses_old_self(expression: str) -> bool:
    """Whether the expression refers to `oldSelf` (outside string literals), as a transition rule does."""
    return re.search(r"\boldSelf\b", _STRING_LITERAL.sub("''", expression)) is not None


@functools.lru_cache(maxsize=None)
def compile_rule(expression: str, old_self_absent: bool = False) -> Any:
    """The compiled expression; cached, so each rule compiles once. With old_self_absent, `oldSelf` is
    optional.none(), as for a rule with optionalOldSelf on create."""
    source = f"cel.bind(oldSelf, optional.none(), {expression})" if old_self_absent else expression
    try:
        return _cel_env().compile(source)
    except Exception as err:  # cel-expr-python raises RuntimeError with the parser's or checker's message
        raise CelRuleError(str(err).splitlines()[0]) from None


def evaluate_rule(expression: str, self_value: Any, old_self_absent: bool = False) -> tuple[Any, str | None]:
    """(result, None), or (None, the run-time error). Raises CelRuleError if the expression does not compile."""
    value = compile_rule(expression, old_self_absent).eval(data={"self": self_value})
    error = value.type() == cel.Type.ERROR
    try:
        plain = value.value() if error else value.plain_value()
    except TypeError:  # a value with no Python form (an optional, say): neither a bool nor a message
        return "<a value with no Python form>", None
    return (None, str(plain)) if error else (plain, None)


_CEL_RESERVED = {"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
                 "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"}
_ESCAPES = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}


def cel_property_name(name: str) -> str | None:
    """A property name as CEL sees it (k8s.io/apiserver/pkg/cel/escaping.go), or None if it is not accessible."""
    if not re.fullmatch(r"[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*", name):
        return None
    if name in _CEL_RESERVED:
        return f"__{name}__"
    return re.sub(r"__|[-./]", lambda m: _ESCAPES[m.group(0)], name)


def _go_duration(text: str) -> datetime.timedelta:
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    body = text.lstrip("+-")
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", body)
    if body != "0" and (not parts or "".join(n + u for n, u in parts) != body):
        raise ValueError(f"invalid duration {text!r}")
    seconds = sum(float(n) * units[u] for n, u in parts)
    return datetime.timedelta(seconds=-seconds if text.startswith("-") else seconds)


def cel_value(value: Any, schema: dict[str, Any], root: bool = False) -> Any:
    """A value as the API server presents it to CEL (k8s.io/apiserver/pkg/cel/common/values.go).

    Raises ValueError for a string that its format makes a duration, timestamp or bytes and that is not one."""
    if value is None or schema.get("x-kubernetes-int-or-string"):
        return value
    kind = schema.get("type")
    if kind == "object" and isinstance(value, dict):
        props = schema.get("properties")
        if root:  # of the root object's metadata, only name and generateName are accessible
            props = {**(props or {}), "metadata": {"type": "object", "properties": {
                "name": {"type": "string"}, "generateName": {"type": "string"}}}}
        if props is not None:
            return {cel_property_name(k): cel_value(v, props[k]) for k, v in value.items()
                    if k in props and cel_property_name(k)}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return {k: cel_value(v, extra) for k, v in value.items()}
        return {} if schema.get("x-kubernetes-preserve-unknown-fields") else value
    if kind == "array" and isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [cel_value(v, schema["items"]) for v in value]
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "string" and isinstance(value, str):
        fmt = schema.get("format")
        if fmt == "duration":
            duration = duration_pb2.Duration()
            duration.FromTimedelta(_go_duration(value))
            return duration
        if fmt in ("date", "date-time"):
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(datetime.datetime.fromisoformat(value.replace("Z", "+00:00")))
            return stamp
        if fmt == "byte":
            try:
                return base64.b64decode(value, validate=True)
            except Exception as err:  # binascii.Error
                raise ValueError(f"invalid base64 {value!r}: {err}") from None
    return value


def rule_failures(value: Any, schema: dict[str, Any], path: tuple[str, ...] = ()) -> Iterable[tuple[str, str]]:
    """(path, message) for every rule, in `schema` and below, that `value` breaks on create."""
    if value is None or not isinstance(schema, dict):
        return
    rules = schema.get("x-kubernetes-validations") or []
    if rules:
        try:
            self_value = cel_value(value, schema, root=not path)
        except ValueError as err:
            yield "/".join(path), f"cannot be presented to CEL: {err}"
            return
        for rule in rules:
            yield from _rule_failure(rule, self_value, path)
    if isinstance(value, dict):
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        for key, item in value.items():
            below = props.get(key) if props is not None else extra if isinstance(extra, dict) else None
            if below is not None:
                yield from rule_failures(item, below, (*path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from rule_failures(item, schema["items"], (*path, str(i)))


def _rule_failure(rule: dict[str, Any], self_value: Any, path: tuple[str, ...]) -> Iterable[tuple[str, str]]:
    expression = rule["rule"]
    if expression in UNSUPPORTED_RULES:
        return
    transition = uses_old_self(expression)
    if transition and not rule.get("optionalOldSelf"):
        return  # the API server evaluates a transition rule on update only
    where = "/".join(path + tuple(p for p in re.split(r"[.\[\]']+", rule.get("fieldPath", "")) if p))
    try:
        result, error = evaluate_rule(expression, self_value, transition)
    except CelRuleError as err:
        yield where, f"rule {expression!r} does not compile: {err}"
        return
    if result is True:
        return
    message = rule.get("message") or f"failed rule: {expression}"
    if rule.get("messageExpression"):
        text = None
        try:
            text, _ = evaluate_rule(rule["messageExpression"], self_value, uses_old_self(rule["messageExpression"]))
        except CelRuleError as err:
            yield where, f"messageExpression {rule['messageExpression']!r} does not compile: {err}"
        if isinstance(text, str) and text.strip() and "\n" not in text:
            message = text
    if error is not None:
        message += f" (the rule fails to evaluate: {error})"
    elif result is not False:
        message += f" (the rule yields {result!r}, not a bool)"
    yield where, message


def validate_custom_resource_rules(m: dict[str, Any]) -> list[str]:
    """Every `x-kubernetes-validations` rule of the CRD that the object breaks on create: `Kind/name: path: message`."""
    schema = crd_schemas().get((m["apiVersion"], m["kind"]))
    if schema is None:
        return [f"{m['apiVersion']} {m['kind']}: no CRD in {REFERENCE}"]
    return [f"{m['kind']}/{m['metadata'].get('name')}: {path}: {message}" for path, message in rule_failures(m, schema)]


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
        # The kube-state-metrics sub-chart 8.4.0 is not in ../shared/reference: these two keys were checked by hand
        # in its values.yaml (prometheus-community/helm-charts @ cf408a29, charts/kube-state-metrics: top-level
        # `affinity: {}` and `resources: {}`).
        "kube-state-metrics.affinity", "kube-state-metrics.resources",
        # Alertmanager's own configuration file, not the chart's schema (tests/test_alerts.py checks it)
        "alertmanager.config")),
    ("keda", "2.20.2"): ("keda-2.20.2", ()),
    # config.envoyGateway is EG's EnvoyGateway config file, not chart keys: EG_CONFIG_KEYS below checks it.
    ("gateway-helm", "v1.9.0"): ("envoy-gateway-v1.9.0", ("config.envoyGateway", "deployment.pod.affinity",
                                                        "deployment.envoyGateway.resources", "certgen.job.affinity")),
    ("ai-gateway-helm", "v1.1.0"): ("envoy-ai-gateway-v1.1.0", ("controller.affinity", "controller.resources")),
    # podSecurityContext: "[Pod security context] for all pods", given to them whole (toYaml); its values.yaml shows
    # runAsNonRoot and friends in comments only. The rendered pods are checked against the Kubernetes schema.
    ("keda-add-ons-http", "0.15.0"): ("keda-http-add-on-0.15.0", ("podSecurityContext",)),
    # podSecurityContext and securityContext are given to the pod and container whole (toYaml, templates/
    # deployment.yaml @ v3.5.0); the rendered pods are checked against the Kubernetes schema.
    ("aws-load-balancer-controller", "3.5.0"): ("aws-load-balancer-controller-3.5.0",
                                                ("podSecurityContext", "securityContext")),
}
# Keys the reference values.yaml has but the released chart does not: ../shared/reference holds kedacore/charts main
# @ 1444d00d, ahead of the releases. `git diff` of the published keda-2.20.2.tgz and keda-add-ons-http-0.15.0.tgz
# (planning/versions.py) against it: these keys, and the templates that read them, are only on main (the released
# 0.15.0 binaries do not read KEDA_HTTP_DIRECT_POD_ROUTING or KEDA_HTTP_COLD_START_MAX_PENDING_REQUESTS either).
NOT_RELEASED: dict[tuple[str, str], tuple[str, ...]] = {
    ("keda", "2.20.2"): ("watchLabelSelector", "watchLabelSelectorForTriggerauth", "operator.hostUsers",
                         "metricsServer.hostUsers", "webhooks.hostUsers"),
    ("keda-add-ons-http", "0.15.0"): ("interceptor.directPodRouting", "interceptor.coldStart",
                                      "interceptor.extraVolumes", "interceptor.extraVolumeMounts",
                                      "interceptor.tls.caDirs"),
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


# The EnvoyGateway config paths the program sets, each checked by hand against the Go types' json tags
# (envoyproxy/gateway api/v1alpha1/envoygateway_types.go @ v1.9.0: EnvoyGateway, EnvoyGatewayProvider,
# EnvoyGatewayKubernetesProvider.rateLimitDeployment, ExtensionManager{hooks.xdsTranslator{translation, post},
# service.fqdn{hostname, port}}, ExtensionAPISettings, RateLimit{backend{type, redis{url}}, failClosed};
# shared_types.go KubernetesDeploymentSpec{replicas, pod{affinity}, container{resources}}). Below a free-form
# prefix (Kubernetes' own types) anything goes; the rendered ConfigMap is what EG reads.
EG_CONFIG_KEYS = {
    "gateway.controllerName", "provider.type", "provider.kubernetes.rateLimitDeployment.replicas",
    "logging.level.default", "extensionApis.enableEnvoyPatchPolicy", "extensionApis.enableBackend",
    *(f"extensionManager.hooks.xdsTranslator.translation.{p}.includeAll"
      for p in ("listener", "route", "cluster", "secret")),
    "extensionManager.hooks.xdsTranslator.post", "extensionManager.service.fqdn.hostname",
    "extensionManager.service.fqdn.port", "rateLimit.backend.type", "rateLimit.backend.redis.url",
    "rateLimit.failClosed",
}
EG_CONFIG_FREE = ("provider.kubernetes.rateLimitDeployment.pod.affinity",
                  "provider.kubernetes.rateLimitDeployment.container.resources")


def release_values_errors(release: Resource, chart: str, version: str) -> list[str]:
    values = release.inputs.get("values", {})
    if not values:  # the chart's defaults (e.g. ai-gateway-crds-helm, CRDs only)
        return []
    if (chart, version) == ("gateway-helm", "v1.9.0"):
        config = values.get("config", {}).get("envoyGateway", {})
        errors = [f"{release.name} ({chart} {version}): config.envoyGateway.{p}: not an EnvoyGateway field we "
                  "checked" for p in _leaf_paths(config)
                  if p not in EG_CONFIG_KEYS and not any(p.startswith(f + ".") for f in EG_CONFIG_FREE)]
        if errors:
            return errors
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
    unreleased = [f"{release.name} ({chart} {version}): {p}: only in the reference's unreleased chart, not in the "
                  "released one" for p in _key_paths(values) if p in NOT_RELEASED.get((chart, version), ())]
    chart_vals = chart_values(folder)
    for (parent, key), sub_folder in SUBCHART_REFERENCES.items():
        if parent == chart:  # the sub-chart's values.yaml, with the parent's own keys for it merged in at any depth
            chart_vals = {**chart_vals, key: _merged(chart_values(sub_folder), chart_vals.get(key) or {})}
    return unreleased + [f"{release.name} ({chart} {version}): {e}"
                         for e in values_key_errors(values, chart_vals, free_form)]


def _key_paths(values: Any, path: str = "") -> list[str]:
    """Every key path in `values`, inner ones included."""
    found: list[str] = []
    for k, v in values.items() if isinstance(values, dict) else ():
        here = f"{path}.{k}" if path else str(k)
        found += [here, *_key_paths(v, here)]
    return found


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, maps merged key by key (as Helm merges a parent's values into a sub-chart's)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


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


# What parliament 1.6.4's IAM database predates, each found in AWS's own reference: the ELB action ModifyIpPools
# (ELB API reference, API_ModifyIpPools: IPAM pools for Application Load Balancers) and the condition key
# elasticloadbalancing:CreateAction on AddTags (ELB user guide, "ELB API permissions to tag resources during
# creation"). Both are in the AWS Load Balancer Controller's own policy (data/aws-load-balancer-controller-iam-
# policy.json). Findings exactly these are not blocking; any other unknown action or key still is.
NEWER_THAN_PARLIAMENT = {
    ("UNKNOWN_ACTION", "Unknown action elasticloadbalancing:ModifyIpPools"),
    ("UNKNOWN_CONDITION_FOR_ACTION",
     "Unknown condition elasticloadbalancing:CreateAction for action elasticloadbalancing:AddTags"),
}


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
        if f.issue not in BLOCKING or (f.issue, str(f.detail)) in NEWER_THAN_PARLIAMENT:
            continue
        if kind != "identity" and f.issue == "MALFORMED" and "Resource" in str(f.detail):
            continue
        # parliament knows only public identity providers; an IAM OIDC provider (IRSA) is a valid principal
        if f.issue == "UNKNOWN_FEDERATION_SOURCE" and OIDC_PROVIDER_ARN.fullmatch(str(f.detail)):
            continue
        problems.append(f"{f.issue}: {f.detail}")
    return problems
