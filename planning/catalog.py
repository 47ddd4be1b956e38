"""The model catalog (`models.yaml`): what each NIM needs, validated the same way as stack config.

Also the home of the image-tag pattern (TAG_RE): a catalog entry's `tag` and a model's `image_tag` override
(planning/models.py) are both checked against it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

from planning.gpus import GPU_TYPES

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "models.yaml"


@dataclass(frozen=True)
class CatalogModel:
    name: str  # e.g. meta/llama3-8b-instruct
    image: str  # repository, e.g. nvcr.io/nim/meta/llama3-8b-instruct
    tag: str  # pinned, never latest
    served_model_name: str  # the `model` field clients send
    parameters_b: float  # billions of parameters
    min_gpus: dict[str, int]  # GPU type -> fewest GPUs of that type that hold the model
    cache_gib: int  # model cache volume size
    memory_gib: int  # host memory request
    cpu: int  # vCPU request
    metrics_path: str  # Prometheus endpoint of this NIM release
    # A public Hugging Face tokenizer of the model's family: AIPerf counts prompt and answer tokens with it
    # (planning/aiperf.py); the model's own repository may be gated.
    tokenizer: str
    # Whether a Job on a CPU node can download the weights before the first GPU replica starts (components/
    # precache.py); when not, `precache_reason` says why, and the first replica downloads on its GPU node.
    precache: bool = True
    precache_reason: str = ""


@dataclass(frozen=True)
class Catalog:
    models: dict[str, CatalogModel]
    path: str


FIELDS: dict[str, type | tuple[type, ...]] = {
    "image": str,
    "tag": str,
    "served_model_name": str,
    "parameters_b": (int, float),
    "min_gpus": dict,
    "cache_gib": int,
    "memory_gib": int,
    "cpu": int,
    "metrics_path": str,
    "tokenizer": str,
}
# Optional fields: `precache: false` needs a `precache_reason`.
OPTIONAL: dict[str, type] = {"precache": bool, "precache_reason": str}
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*")
# A Hugging Face repository id, `<owner>/<name>` (the Hub's naming: letters, digits, '-', '_', '.').
HF_REPO_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
IMAGE_RE = re.compile(r"[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+")
# An image tag (the OCI distribution spec's tag grammar), pinned: never `latest`.
TAG_RE = re.compile(r"(?!latest$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class CatalogError(pulumi.RunError):
    def __init__(self, path: str, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"Invalid model catalog {path} ({len(problems)} problems); nothing was created:\n{lines}")


def parse_catalog(data: Any, path: str = "models.yaml") -> Catalog:
    """Validate a parsed models.yaml; raises CatalogError listing every problem."""
    problems: list[str] = []
    entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise CatalogError(path, ["models: missing or empty; allowed: a map of model name -> entry"])

    models: dict[str, CatalogModel] = {}
    for name, entry in entries.items():
        where = f"models.{name}"
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            problems.append(f"{where}: the name is not '<publisher>/<model>' in lowercase")
        if not isinstance(entry, dict):
            problems.append(f"{where}: not a map of fields")
            continue
        bad = False
        for key in entry:
            if key not in FIELDS and key not in OPTIONAL:
                problems.append(f"{where}.{key}: unknown field; allowed: {', '.join([*FIELDS, *OPTIONAL])}")
                bad = True
        for key, kind in OPTIONAL.items():
            if key in entry and not isinstance(entry[key], kind):
                problems.append(f"{where}.{key}: {entry[key]!r} has the wrong type")
                bad = True
        for key, kind in FIELDS.items():
            value = entry.get(key)
            if value is None:
                problems.append(f"{where}.{key}: missing")
                bad = True
            elif not isinstance(value, kind) or isinstance(value, bool):
                problems.append(f"{where}.{key}: {value!r} has the wrong type")
                bad = True
        if bad:
            continue
        if not IMAGE_RE.fullmatch(entry["image"]) or ":" in entry["image"].rsplit("/", 1)[-1]:
            problems.append(f"{where}.image: {entry['image']!r} is not an image repository (put the tag in 'tag')")
        if not TAG_RE.fullmatch(entry["tag"]):
            problems.append(f"{where}.tag: {entry['tag']!r} is not a pinned tag (never 'latest')")
        for key in ("cache_gib", "memory_gib", "cpu"):
            if entry[key] < 1:
                problems.append(f"{where}.{key}: {entry[key]} must be at least 1")
        if entry["parameters_b"] <= 0:
            problems.append(f"{where}.parameters_b: must be positive")
        if not HF_REPO_RE.fullmatch(entry["tokenizer"]):
            problems.append(f"{where}.tokenizer: {entry['tokenizer']!r} is not a Hugging Face repository "
                            "'<owner>/<name>'")
        if not entry["metrics_path"].startswith("/"):
            problems.append(f"{where}.metrics_path: {entry['metrics_path']!r} must start with '/'")
        min_gpus = entry["min_gpus"]
        if not min_gpus:
            problems.append(f"{where}.min_gpus: empty; allowed: GPU type -> count, types {', '.join(GPU_TYPES)}")
        for gpu, count in min_gpus.items():
            if gpu not in GPU_TYPES:
                problems.append(f"{where}.min_gpus.{gpu}: unknown GPU type; allowed: {', '.join(GPU_TYPES)}")
            elif not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 8:
                problems.append(f"{where}.min_gpus.{gpu}: {count!r} must be a whole number from 1 to 8")
        precache, reason = entry.get("precache", True), str(entry.get("precache_reason", "")).strip()
        if not precache and not reason:
            problems.append(f"{where}.precache_reason: missing; `precache: false` must say why the weights cannot "
                            "be downloaded before the first GPU replica starts")
        if precache and reason:
            problems.append(f"{where}.precache_reason: given, but precache is not false")
        models[name] = CatalogModel(name=name, **{k: entry[k] for k in FIELDS}, precache=precache,
                                    precache_reason=reason)

    if problems:
        raise CatalogError(path, problems)
    return Catalog(models=models, path=path)


def load_catalog(path: Path | str = DEFAULT_PATH) -> Catalog:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise CatalogError(str(path), [f"cannot read: {err}"]) from None
    return parse_catalog(data, path.name)
