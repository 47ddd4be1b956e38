"""Offline plan: what `pulumi up` would create for a stack, without AWS or the Pulumi CLI.

    python -m tools.plan [--stack dev] [--set KEY=VALUE ...] [--json FILE] [--destroy]

Runs the very same `__main__.py` under Pulumi's mock runtime (tools/mockrun.py) with the stack's config file plus
the overrides, then prints a tree by component, counts per resource type and the stack outputs, the cost, and the
system checks (tools/checks.py: references, network reachability, destroy order); `--destroy` also prints the order
`pulumi destroy` deletes in. A config error, a budget overrun or a failed system check exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from planning.cost import CostEstimate
from tools import checks, mockrun, opaque

# Extra sections (cost, ...) register here: each takes the Plan and returns
# (title, text lines, JSON value, failed); a failed section makes the plan exit non-zero.
Section = Callable[[mockrun.Plan], "tuple[str, list[str], Any, bool] | None"]
SECTIONS: list[tuple[str, Section]] = []


def cost_section(plan: mockrun.Plan):
    """The stack's own cost estimate (exported as `cost_estimate`), as a table; over budget fails the plan."""
    exported = plan.outputs.get("cost_estimate")
    if not isinstance(exported, dict):
        return None
    cost = CostEstimate.from_json(exported)
    return "Estimated cost", cost.render(), exported, cost.over_budget


def checks_section(plan: mockrun.Plan):
    """What no single object shows: references reach their creators, the network lets the cluster work, and
    destroy waits for what controllers delete on their own. Any problem fails the plan."""
    found = checks.all_problems(plan)
    flows, _ = checks.flows(plan)
    lines = [
        f"references    {'OK' if not found['references'] else 'FAILED'}: every input naming a resource of the "
        "stack depends on it",
        f"reachability  {'OK' if not found['reachability'] else 'FAILED'}: {sum(f.ok for f in flows)} of "
        f"{len(flows)} required flows allowed by the security groups",
        f"destroy       {'OK' if not found['destroy'] else 'FAILED'}: {len(checks.async_cleanups(plan))} "
        "asynchronous deletions, each waited for while its controller still runs; "
        f"KEDA scalers ({len(plan.of_type('kubernetes:keda.sh/v1alpha1:ScaledObject'))}) each deleted before its "
        f"target and while KEDA runs; {len(checks.pool_workloads(plan))} workloads on Karpenter's nodes, each "
        "deleted before its NodePool (--destroy shows the order)",
    ]
    for name, problems in found.items():
        lines += [f"  {name}: {p}" for p in problems]
    return "System checks", lines, found, any(found.values())


def tree_lines(plan: mockrun.Plan) -> list[str]:
    children: dict[str, list[mockrun.Resource]] = {}
    for r in plan.resources:
        children.setdefault(r.parent, []).append(r)
    roots = [r for r in plan.resources if r.parent not in {x.urn for x in plan.resources}]
    width = max((len(r.type) for r in plan.resources), default=20) + 8
    lines = [f"    {'TYPE':<{width}} NAME", f" +  {'pulumi:pulumi:Stack':<{width}} {mockrun.PROJECT}-{plan.stack}"]

    def walk(nodes: list[mockrun.Resource], prefix: str) -> None:
        # components first, then by type and name, so the tree reads like the architecture
        nodes = sorted(nodes, key=lambda r: (r.custom, r.type, r.name))
        for i, r in enumerate(nodes):
            last = i == len(nodes) - 1
            branch = "└─ " if last else "├─ "
            label = f"{prefix}{branch}{r.type}"
            # what an opaque component creates inside, or AWS on its behalf (tools/opaque.py): modelled, not registered
            note = f"  ({'made by ' + r.created_by if r.created_by == opaque.BY_AWS else 'inside ' + r.created_by})" \
                if r.implied else ""
            lines.append(f" {'+' if r.created_by != opaque.BY_AWS else ' '}  {label:<{width}} {r.name}{note}")
            walk(children.get(r.urn, []), prefix + ("   " if last else "│  "))

    walk(roots, "")
    return lines


def render(plan: mockrun.Plan, extra: list[tuple[str, list[str]]]) -> str:
    out = [f"Offline plan of stack '{plan.stack}' (Pulumi mock runtime; nothing is created)", ""]
    out += tree_lines(plan)
    counts = Counter(r.type for r in plan.resources if r.custom and r.created_by != opaque.BY_AWS)
    inside = sum(1 for r in plan.resources if r.implied and r.created_by != opaque.BY_AWS)
    out += ["", f"Resources: {sum(counts.values())} to create, {inside} of them inside pulumi-eks "
            f"(+ {sum(1 for r in plan.resources if not r.custom)} components)"]
    out += [f"  {n:>4}  {t}" for t, n in sorted(counts.items())]
    out += ["", "Outputs:"]
    width = max((len(k) for k in plan.outputs), default=0)
    for key, value in plan.outputs.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if len(text) > 160:  # e.g. cost_estimate: shown as its own section, whole in --json
            text = f"{{...}} ({len(value)} keys; whole in --json)" if isinstance(value, dict) else text[:157] + "..."
        out.append(f"  {key:<{width}}  {text}")
    for title, lines in extra:
        out += ["", f"{title}:"] + [f"  {line}" for line in lines]
    if plan.warnings:
        out += ["", "Warnings:"] + [f"  - {w}" for w in plan.warnings]
    if plan.notes:
        out += ["", "Notes:"] + [f"  - {n}" for n in plan.notes]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to read (default: dev)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key as `pulumi config set KEY VALUE` would (repeatable)")
    parser.add_argument("--json", dest="json_file", metavar="FILE", help="also write the plan as JSON to FILE")
    parser.add_argument("--destroy", action="store_true", help="also print the order `pulumi destroy` deletes in")
    args = parser.parse_args(argv)

    try:
        plan = mockrun.run(args.stack, args.overrides)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if plan.error:
        # as `pulumi up` shows a RunError: the message alone, no traceback
        print(f"error: {plan.error}", file=sys.stderr)
        return 1

    extra: list[tuple[str, list[str]]] = []
    document = plan.as_json()
    failures = []
    for key, section in SECTIONS:
        result = section(plan)
        if result is None:
            continue
        title, lines, value, failed = result
        extra.append((title, lines))
        document[key] = value
        if failed:
            failures.append(title)
    if args.destroy:
        extra.append(("Destroy order (each line after the ones above it are gone)", checks.render_destroy(plan)))
    print(render(plan, extra))
    status = 1 if failures else 0
    if failures:
        why = {"Estimated cost": "the plan exceeds hourly_budget", "System checks": "a system check failed"}
        print(f"\nerror: {'; '.join(why.get(t, t) for t in failures)} (see above)", file=sys.stderr)
    if args.json_file:
        Path(args.json_file).write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
        print(f"\nWrote {args.json_file}")
    return status


SECTIONS.append(("cost", cost_section))
SECTIONS.append(("checks", checks_section))

if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `make plan | head`: the reader left; not an error of the plan
        sys.stderr.close()
        sys.exit(0)
