"""The plan of the stacks users already have up, recorded, and what a change of code does to them.

    python -m tools.baseline check     # compare today's plans with the record (exit 1 on any difference)
    python -m tools.baseline write     # re-record them (a deliberate step: the diff shows what `pulumi up` changes)

Pulumi knows a resource by its URN (stack, project, parent types, type, name). Code that moves a resource to
another parent or renames it or its type makes `pulumi up` delete the old one and create a new one (a cluster, a
file system full of cached models) unless the resource lists its old URN in `aliases`. The record in
`tests/baseline/<name>.json` holds, per URN, what each registered resource is: type, parent, provider,
dependencies, resource options (protect, ignore_changes, custom_timeouts, ...), inputs (secrets masked, each
secret's value as a short hash), and the stack outputs. `compare` maps every resource of a new plan to a recorded
URN, by its own URN or one of its aliases (tools/mockrun.py records aliases as the SDK resolves them), and reports:
- a recorded URN that nothing maps to: `pulumi up` would delete that resource;
- a resource that maps to no recorded URN: it would be created;
- with `strict`, any difference in parent, provider, dependencies, options, inputs, secret values or stack
  outputs, with URNs read through the mapping, so a renamed parent does not show up as a change of its children.

What pulumi-eks creates inside (tools/opaque.py) is left out: it follows from the inputs of `eks:index:Cluster`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from tools import mockrun

DIR = Path(__file__).resolve().parent.parent / "tests" / "baseline"

# The second reference stack: three models of different sizes (one on several GPUs, one on-demand only, one with
# its own env), on every GPU family, beside the dev stack's single 8B model.
THREE_MODELS = (
    'gpu_instance_families=["g5","g6","g6e","p4de","p5"]',
    "gpu_limit=32",
    'nim_models=[{"name": "meta/llama-3.1-8b-instruct", "gpus": 1},'
    ' {"name": "meta/llama-3.1-70b-instruct", "gpus": 4, "max_replicas": 2},'
    ' {"name": "meta/llama-3.2-1b-instruct", "capacity_types": ["on-demand"], "env": {"NIM_MAX_MODEL_LEN": "4096"}}]',
)

# name -> (stack, overrides)
STACKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dev": ("dev", ()),
    "three-models": ("dev", (*THREE_MODELS, "genai_perf=true")),
}

# compared per resource; the type is part of the URN, which the mapping checks (an alias may change it)
FIELDS = ("custom", "parent", "provider", "providers", "dependencies", "options", "inputs", "secrets")
OUTPUTS = "__stack_outputs__"  # the record's key for the stack outputs (not a URN)


def record(plan: mockrun.Plan) -> dict[str, dict[str, Any]]:
    """URN -> what the resource is, for every resource the program registers; and the stack outputs."""
    found: dict[str, dict[str, Any]] = {
        r.urn: {
            "type": r.type, "custom": r.custom, "parent": r.parent, "provider": _provider_urn(r.provider),
            "providers": {k: _provider_urn(v) for k, v in sorted(r.providers.items())},
            "dependencies": r.dependencies, "options": r.options, "inputs": r.inputs,
            "secrets": secret_fingerprints(r.inputs, r.revealed),
        }
        for r in sorted(plan.resources, key=lambda r: r.urn) if not r.implied
    }
    found[OUTPUTS] = plan.outputs
    return found


def secret_fingerprints(inputs: Any, revealed: Any, path: str = "") -> dict[str, str]:
    """Path -> a short hash of each secret's value (the record never holds a secret, but sees it change), and of a
    dynamic resource's serialized provider (`__provider`, left out of the inputs)."""
    found: dict[str, str] = {}
    if inputs == mockrun.SECRET:
        found[path or "."] = hashlib.sha256(json.dumps(revealed, sort_keys=True).encode()).hexdigest()[:16]
    elif isinstance(inputs, dict) and isinstance(revealed, dict):
        for key in inputs:
            found.update(secret_fingerprints(inputs[key], revealed.get(key), f"{path}.{key}" if path else key))
        if not path and "__provider" in revealed:
            found["__provider"] = hashlib.sha256(str(revealed["__provider"]).encode()).hexdigest()[:16]
    elif isinstance(inputs, list) and isinstance(revealed, list):
        for i, (a, b) in enumerate(zip(inputs, revealed)):
            found.update(secret_fingerprints(a, b, f"{path}[{i}]"))
    return found


def _provider_urn(ref: str) -> str:
    # a provider reference is "<urn>::<id>"; the id follows from the URN, so the URN is what identifies it
    return ref.rsplit("::", 1)[0] if ref else ""


def compare(recorded: dict[str, dict[str, Any]], plan: mockrun.Plan, strict: bool = True) -> list[str]:
    """What `pulumi up` of `plan` would do to a stack up with `recorded`, beyond updating nothing."""
    problems: list[str] = []
    outputs = recorded.get(OUTPUTS)
    recorded = {urn: entry for urn, entry in recorded.items() if urn != OUTPUTS}
    mapping: dict[str, str] = {}  # URN now -> recorded URN
    for r in plan.resources:
        if r.implied:
            continue
        if r.urn in recorded:
            mapping[r.urn] = r.urn
            continue
        hits = [a for a in r.aliases if a in recorded]
        if len(hits) == 1:
            mapping[r.urn] = hits[0]
        elif hits:
            problems.append(f"{r.urn}: aliases {hits} name more than one recorded resource")
        else:
            problems.append(f"would create {r.urn} (no recorded URN among its aliases {r.aliases})")
    claimed: dict[str, list[str]] = {}
    for now, old in mapping.items():
        claimed.setdefault(old, []).append(now)
    for old, nows in claimed.items():
        if len(nows) > 1:
            problems.append(f"{old} is claimed by {len(nows)} resources: {nows}")
    for old in recorded:
        if old not in claimed:
            problems.append(f"would delete {old} (nothing has that URN or an alias to it)")
    if not strict:
        return problems

    def translate(value: Any) -> Any:
        if isinstance(value, str):
            if value in mapping:
                return mapping[value]
            urn, sep, rest = value.rpartition("::")  # a provider reference
            return f"{mapping[urn]}{sep}{rest}" if sep and urn in mapping else value
        if isinstance(value, dict):
            return {k: translate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [translate(v) for v in value]
        return value

    if outputs is not None and plan.outputs != outputs:
        problems.append(f"stack outputs: {_first_difference(outputs, plan.outputs)}")
    now = record(plan)
    for urn, old in sorted(mapping.items()):
        entry = translate(now[urn])
        entry["dependencies"] = sorted(entry["dependencies"])
        for key in FIELDS:
            if entry[key] != recorded[old][key]:
                problems.append(f"{old}: {key}: {_first_difference(recorded[old][key], entry[key])}")
    return problems


def _first_difference(old: Any, new: Any, path: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if key not in new:
                return f"{path}.{key} removed (was {json.dumps(old[key])[:200]})"
            if key not in old:
                return f"{path}.{key} added ({json.dumps(new[key])[:200]})"
            if old[key] != new[key]:
                return _first_difference(old[key], new[key], f"{path}.{key}")
    if isinstance(old, list) and isinstance(new, list) and all(isinstance(v, str) for v in old + new) \
            and len(old) != len(new):
        added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
        return f"{path or '.'}: added {added}, removed {removed}"
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            if a != b:
                return _first_difference(a, b, f"{path}[{i}]")
    return f"{path or '.'}: {json.dumps(old)[:200]} -> {json.dumps(new)[:200]}"


def path_of(name: str) -> Path:
    return DIR / f"{name}.json"


def load(name: str) -> dict[str, dict[str, Any]]:
    return json.loads(path_of(name).read_text())


def plan_of(name: str) -> mockrun.Plan:
    stack, overrides = STACKS[name]
    plan = mockrun.run(stack, list(overrides))
    if plan.error:
        raise RuntimeError(f"{name}: {plan.error}")
    return plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.baseline", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("check", "write"))
    args = parser.parse_args(argv)
    status = 0
    for name in STACKS:
        plan = plan_of(name)
        if args.action == "write":
            DIR.mkdir(parents=True, exist_ok=True)
            path_of(name).write_text(json.dumps(record(plan), indent=1, sort_keys=True) + "\n")
            print(f"wrote {path_of(name)} ({len(record(plan)) - 1} resources and the stack outputs)")
            continue
        problems = compare(load(name), plan)
        print(f"{name}: {'same as recorded' if not problems else f'{len(problems)} differences'}")
        for problem in problems:
            print(f"  {problem}")
        status |= bool(problems)
    return status


if __name__ == "__main__":
    sys.exit(main())
