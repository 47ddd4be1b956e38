"""Stacks already up are not replaced: today's plans against the recorded ones (tools/baseline.py), through aliases."""

from __future__ import annotations

import textwrap

import pytest

from tools import baseline, mockrun


@pytest.mark.parametrize("name", sorted(baseline.STACKS))
def test_plan_is_the_recorded_one(name):
    """Same URNs (or aliases to them), same inputs, parents, providers and dependencies. A change that means to
    alter the plan re-records it with `python -m tools.baseline write`, so the diff shows what `pulumi up` does."""
    problems = baseline.compare(baseline.load(name), baseline.plan_of(name))
    assert not problems, "\n".join(problems[:20])


PROGRAM = """
import pulumi
import pulumi_random as random


class Box(pulumi.ComponentResource):
    def __init__(self, name, opts=None):
        super().__init__({type!r}, name, None, opts)
        self.pet = random.RandomPet(f"{{name}}-pet", length={length},
                                    opts=pulumi.ResourceOptions(parent=self{pet_opts}))
        self.register_outputs({{}})


box = Box({name!r}, opts=pulumi.ResourceOptions(aliases={aliases}))
random.RandomPet("user", prefix=box.pet.id, separator=pulumi.Output.secret({secret!r}))
pulumi.export("greeting", {greeting!r})
"""


def _plan(tmp_path, **values):
    (tmp_path / "Pulumi.t.yaml").write_text("config: {}\n")
    (tmp_path / "__main__.py").write_text(textwrap.dedent(PROGRAM.format(**values)))
    plan = mockrun.run("t", root=tmp_path)
    assert plan.error is None, plan.error
    return plan


OLD = {"type": "t:index:Box", "name": "box", "aliases": "[]", "length": 2, "pet_opts": "", "secret": "-",
       "greeting": "hello"}


def test_a_rename_with_an_alias_changes_nothing(tmp_path):
    recorded = baseline.record(_plan(tmp_path, **OLD))
    # a new type and name for the component; its child's name follows its parent's, its alias follows from the
    # component's (the SDK's inherited_child_alias), and a reference to it reads through the mapping
    renamed = _plan(tmp_path, **{**OLD, "type": "t:index:Crate", "name": "crate",
                                 "aliases": '[pulumi.Alias(type_="t:index:Box", name="box")]'})
    assert not baseline.compare(recorded, renamed)


def test_a_rename_without_an_alias_is_a_replacement(tmp_path):
    recorded = baseline.record(_plan(tmp_path, **OLD))
    problems = baseline.compare(recorded, _plan(tmp_path, **{**OLD, "name": "crate"}))
    deleted = {p.split()[2] for p in problems if p.startswith("would delete")}
    created = {p.split()[2] for p in problems if p.startswith("would create")}
    assert {u.rsplit("::", 1)[1] for u in deleted} == {"box", "box-pet"}
    assert {u.rsplit("::", 1)[1] for u in created} == {"crate", "crate-pet"}


def test_a_changed_input_is_reported(tmp_path):
    recorded = baseline.record(_plan(tmp_path, **OLD))
    problems = baseline.compare(recorded, _plan(tmp_path, **{**OLD, "length": 3}))
    assert problems == [f"{next(u for u in recorded if u.endswith('::box-pet'))}: inputs: .length: 2 -> 3"]
    assert not baseline.compare(recorded, _plan(tmp_path, **{**OLD, "length": 3}), strict=False)


@pytest.mark.parametrize("change, expected", [
    ({"pet_opts": ", protect=True"}, "box-pet: options: .protect added (true)"),
    ({"pet_opts": ", ignore_changes=['length']"}, "box-pet: options: .ignore_changes added ([\"length\"])"),
    ({"pet_opts": ", custom_timeouts=pulumi.CustomTimeouts(create='5m')"}, "box-pet: options: .custom_timeouts added"),
    ({"secret": "+"}, "user: secrets: .separator: "),  # the value is never shown, only that it changed
    ({"greeting": "bye"}, 'stack outputs: .greeting: "hello" -> "bye"'),
])
def test_options_secrets_and_outputs_are_compared(tmp_path, change, expected):
    recorded = baseline.record(_plan(tmp_path, **OLD))
    problems = baseline.compare(recorded, _plan(tmp_path, **{**OLD, **change}))
    assert len(problems) == 1 and expected in problems[0], problems
    assert '"+"' not in problems[0] and '"-"' not in problems[0]
