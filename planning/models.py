"""The `nim_models` list: each entry's fields, declared once, and two steps from raw config to models.

1. `parse_models`: the list and each entry on their own (JSON or names, known fields, values, the catalog, names
   Kubernetes accepts, each model once, replicas, capacity types within `gpu_capacity_types`) -> ModelSpec.
2. `fit_models`: each ModelSpec fitted to the allowed GPU families (planning/gpus.py) -> ModelRequest, what the
   components build from.

Each step reports every problem it finds, named `nim_models[<i>]...`, for ConfigError (planning/config.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import Any

from planning.catalog import TAG_RE, Catalog
from planning.gpus import FitError, fit_model
from planning.instances import InstanceType
from planning.keys import Bad, boolean, build, distinct_list, key, keys_of, matching, parse_keys, readme_table, \
    show, suggest, unknown_keys, whole
from planning.scaling import DEFAULT_CONCURRENCY_TARGET, DEFAULT_IDLE_MINUTES, DEFAULT_TARGET_KV_CACHE_PERCENT, \
    MAX_IDLE_MINUTES, MIN_IDLE_MINUTES

# A StatefulSet's pods carry the label controller-revision-hash=<name>-<10 chars>, which must fit in 63
# characters, so a StatefulSet name may have at most 52.
MAX_WORKLOAD_NAME = 52
WORKLOAD_PREFIX = "nim-llm-"
CAPACITY_TYPES = ("spot", "on-demand")
# Environment the StatefulSet sets itself (key, cache mount, the port probes and Service use, the served name).
RESERVED_ENV = {"NGC_API_KEY", "NIM_CACHE_PATH", "NIM_SERVER_PORT", "NIM_SERVED_MODEL_NAME"}
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env(raw: Any) -> tuple[tuple[str, str], ...]:
    """Extra container environment: a map of variable names to strings, none of RESERVED_ENV."""
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and ENV_NAME_RE.fullmatch(k) and isinstance(v, (str, int, float))
        and not isinstance(v, bool) for k, v in raw.items()
    ):
        raise Bad('allowed: a map of environment variable names to strings, e.g. {"NIM_MAX_MODEL_LEN": "8192"}')
    reserved = sorted(set(raw) & RESERVED_ENV)
    if reserved:
        raise Bad(f"{', '.join(reserved)} {'is' if len(reserved) == 1 else 'are'} set by nim-on-eks")
    return tuple(sorted((k, str(v)) for k, v in raw.items()))


@dataclass(frozen=True)
class ModelSpec:
    """One entry of `nim_models`, parsed and checked against the catalog; not yet fitted to GPUs."""

    name: str = key("name", None, None, "A model in `models.yaml`, e.g. `meta/llama3-8b-instruct`.",
                    required="allowed: a model name from models.yaml")
    gpus: int | None = key(  # None: the count that runs cheapest, chosen by fitting
        "gpus", whole(1, 16), None, "GPUs per replica.",
        shown_default="the count whose cheapest fitting instance (on the configured families) costs least")
    min_replicas: int = key(
        "min_replicas", whole(0, 50), 1,
        "Fewest replicas. `0`: the model scales to zero when idle (no GPU node left) and its next request wakes it "
        "(see Scale to zero); `1` or more keeps it always warm.")
    max_replicas: int = key("max_replicas", whole(1, 50), 5, "Most replicas.")
    image_tag: str = key(  # the catalog's pinned tag unless overridden
        "image_tag", matching(TAG_RE, "a pinned image tag (not 'latest')"), None,
        "NIM image tag override (never `latest`).", shown_default="the catalog's pinned tag")
    capacity_types: tuple[str, ...] = key(  # spot / on-demand for this model's nodes
        "capacity_types", distinct_list(CAPACITY_TYPES, "capacity types"), None,
        "Pin this model to `[\"on-demand\"]` (or spot) within what the GPU NodePool allows.",
        shown_default="`gpu_capacity_types`")
    idle_minutes: int = key(  # None when unset: parse_entry puts the stack's scale_to_zero_idle_minutes
        "idle_minutes", whole(MIN_IDLE_MINUTES, MAX_IDLE_MINUTES), None,
        "Minutes without a request before a model with `min_replicas: 0` scales to zero.",
        shown_default="`scale_to_zero_idle_minutes`")
    target_kv_cache_percent: int = key(  # planning/scaling.py: NVIDIA's NIM Operator samples
        "target_kv_cache_percent", whole(5, 95), DEFAULT_TARGET_KV_CACHE_PERCENT,
        "Autoscaling target with `monitoring`: average GPU KV-cache use per replica, percent (NIM's "
        "`gpu_cache_usage_perc`; NVIDIA's NIM Operator scales on it at 50).")
    target_requests_running: int | None = key(  # optional: an extra in-flight-requests target
        "target_requests_running", whole(1, 256), None,
        "Optional extra autoscaling target: in-flight requests per replica (NIM's `num_requests_running` with "
        "`monitoring`, requests through the interceptor without). Set it where AIPerf shows time to first token "
        f"climbing. Unset: KV-cache use alone with `monitoring`, {DEFAULT_CONCURRENCY_TARGET} without.",
        shown_default="(none)")
    env: tuple[tuple[str, str], ...] = key(  # extra container environment
        "env", env, (), "Extra NIM environment, e.g. `NIM_MAX_MODEL_LEN`, `NIM_MODEL_PROFILE`, "
        "`NIM_TENSOR_PARALLEL_SIZE`.", shown_default="`{}`")
    precache: bool = key(  # download the weights with a Job on a CPU node before the first GPU replica starts
        "precache", boolean, True,
        "Download the weights into the cache with a Job on a CPU node before the first GPU replica starts; "
        "`false`: the first replica downloads them on its GPU node.")
    k8s_name: str  # nim-llm-<short name>, the StatefulSet and Service name


@dataclass(frozen=True)
class ModelRequest(ModelSpec):
    """One entry of `nim_models`, resolved against the catalog and fitted to the allowed GPU families."""

    gpus: int  # GPUs per replica: as configured, or the count whose cheapest fitting instance costs least
    gpu_types: tuple[str, ...]  # GPU types that hold the model with `gpus` GPUs on the allowed families
    instance_types: tuple[str, ...]  # allowed instance types that fit one replica (cheapest first)


FIELDS = {k.name: k for k in keys_of(ModelSpec)}


def k8s_name_for(model_name: str) -> str:
    """`meta/llama-3.1-8b-instruct` -> `nim-llm-llama-3-1-8b-instruct` (a DNS-1035 label)."""
    short = model_name.rsplit("/", 1)[-1].lower()
    return WORKLOAD_PREFIX + re.sub(r"[^a-z0-9-]+", "-", short).strip("-")


def readme_fields_table() -> str:
    """The README table of an entry's fields."""
    return readme_table(ModelSpec, "field")


def model_items(raw: Any) -> list[Any]:
    """The entries of `nim_models`: a JSON string or a list from structured config; a bare name or comma-separated
    names are accepted too. Raises Bad when it is not a non-empty list."""
    if isinstance(raw, list):
        items = raw
    else:
        text = str(raw).strip()
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            if text.startswith(("[", "{")):
                raise Bad("is not valid JSON; allowed: a JSON list such as '[\"meta/llama3-8b-instruct\"]'") from None
            items = [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(items, (str, dict)):
        items = [items]
    if not isinstance(items, list) or not items:
        raise Bad("is not a non-empty list; allowed: catalog names or objects with 'name', "
                  "e.g. '[\"meta/llama3-8b-instruct\"]'")
    return items


def parse_models(raw: Any, catalog: Catalog, capacity_types: tuple[str, ...],
                 idle_minutes: int = DEFAULT_IDLE_MINUTES) -> tuple[dict[str, ModelSpec], list[str]]:
    """Every entry that is valid on its own, by where it is (`nim_models[<i>]`), and a problem for each one that
    is not. `capacity_types` is the stack's gpu_capacity_types: each entry's default and what it may narrow;
    `idle_minutes` the stack's scale_to_zero_idle_minutes, each entry's default.
    """
    try:
        items = model_items(raw)
    except Bad as bad:
        return {}, [f"nim_models: {show(raw)} {bad}"]
    problems: list[str] = []
    specs: dict[str, ModelSpec] = {}
    seen: dict[str, str] = {}  # k8s name -> where it was first listed
    for i, item in enumerate(items):
        where = f"nim_models[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            problems.append(f"{where}: {show(item)} is neither a model name nor an object with 'name'")
            continue
        spec = parse_entry(item, where, catalog, capacity_types, idle_minutes, seen, problems)
        if spec is not None:
            specs[where] = spec
    return specs, problems


def parse_entry(item: dict[str, Any], where: str, catalog: Catalog, capacity_types: tuple[str, ...],
                idle_minutes: int, seen: dict[str, str], problems: list[str]) -> ModelSpec | None:
    """One entry: its fields, then its name; None when `problems` gained any. `seen` (k8s name -> where) finds a
    model listed twice."""
    before = len(problems)
    problems += unknown_keys(item, list(FIELDS), f"{where}.", f"allowed: {', '.join(FIELDS)}")
    values = parse_keys([k for k in FIELDS.values() if k.name != "name"], item, set(), f"{where}.", problems)
    name = item.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}.name: missing; {FIELDS['name'].required}")
        return None
    if name not in catalog.models:
        problems.append(f"{where}.name: '{name}' is not in the model catalog{suggest(name, sorted(catalog.models))}; "
                        f"allowed: {', '.join(sorted(catalog.models))}, or add an entry to models.yaml")
        return None
    k8s_name = k8s_name_for(name)
    if len(k8s_name) > MAX_WORKLOAD_NAME:
        problems.append(f"{where}.name: '{name}' gives the Kubernetes name '{k8s_name}' ({len(k8s_name)} characters); "
                        f"allowed: at most {MAX_WORKLOAD_NAME} (a StatefulSet's pod labels must fit in 63)")
    if k8s_name in seen:
        problems.append(f"{where}.name: '{name}' is listed twice (also {seen[k8s_name]}, both named '{k8s_name}'); "
                        "allowed: each model once")
    seen.setdefault(k8s_name, where)
    if "min_replicas" in values and "max_replicas" in values and values["min_replicas"] > values["max_replicas"]:
        problems.append(f"{where}: min_replicas {values['min_replicas']} is greater than max_replicas "
                        f"{values['max_replicas']}; allowed: min_replicas <= max_replicas")
    if values.get("idle_minutes") is not None and values.get("min_replicas", 0) > 0:
        problems.append(f"{where}.idle_minutes: set, but min_replicas is {values['min_replicas']}, so the model never "
                        "scales to zero; allowed: idle_minutes with min_replicas 0 (or remove idle_minutes to keep "
                        "the model always warm)")
    wanted = values.get("capacity_types") or capacity_types
    if not set(wanted) <= set(capacity_types):
        problems.append(f"{where}.capacity_types: {show(list(wanted))} is not allowed by gpu_capacity_types "
                        f"{show(list(capacity_types))}; allowed: a subset of it")
    if len(problems) > before:
        return None
    values.update(name=name, image_tag=values["image_tag"] or catalog.models[name].tag, capacity_types=wanted,
                  idle_minutes=values["idle_minutes"] or idle_minutes)
    return build(ModelSpec, values, k8s_name=k8s_name)


def fit_models(specs: dict[str, ModelSpec], catalog: Catalog, families: tuple[str, ...],
               instances: list[InstanceType]) -> tuple[tuple[ModelRequest, ...], list[str]]:
    """Each model (by where it is listed) fitted to the allowed GPU families, and a problem for each that fits
    nothing there. `instances` are those of every supported GPU family (what fits elsewhere is named as a hint).
    """
    models: list[ModelRequest] = []
    problems: list[str] = []
    for where, spec in specs.items():
        entry = catalog.models[spec.name]
        try:
            fit = fit_model(entry.min_gpus, entry.cpu, entry.memory_gib, spec.gpus, families, instances)
        except FitError as err:
            problems.append(f"{where}: {spec.name} {err}")
            continue
        fitted = {f.name: getattr(spec, f.name) for f in fields(spec)}
        fitted.update(gpus=fit.gpus, gpu_types=fit.gpu_types, instance_types=fit.instance_types)
        models.append(ModelRequest(**fitted))
    return tuple(models), problems
