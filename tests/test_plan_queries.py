"""The plan's queries (tools/mockrun.py): the children of a resource and the resources inside a component."""

from __future__ import annotations

import pytest

from tests.conftest import KARPENTER, NIM_MODEL, THREE_MODELS, plan_for
from tools.mockrun import Plan, Resource

STACK = "urn:pulumi:t::p::pulumi:pulumi:Stack::p-t"


def resource(type_: str, name: str, parent: str = STACK, custom: bool = True) -> Resource:
    chain = "" if parent == STACK else parent.split("::")[2] + "$"
    return Resource(type=type_, name=name, urn=f"urn:pulumi:t::p::{chain}{type_}::{name}", id=name, parent=parent,
                    custom=custom, provider="", dependencies=[], inputs={})


def tree() -> tuple[Plan, dict[str, Resource]]:
    """Two components of one type (one nested in a third), children registered before their grandchildren and
    after an unrelated resource."""
    a = resource("t:index:Box", "a", custom=False)
    b = resource("t:index:Box", "b", custom=False)
    outer = resource("t:index:Outer", "outer", custom=False)
    c = resource("t:index:Box", "c", parent=outer.urn, custom=False)
    role = resource("aws:iam/role:Role", "a-role", parent=a.urn)
    inner = resource("t:index:Part", "a-part", parent=a.urn, custom=False)
    deep = resource("aws:iam/role:Role", "a-part-role", parent=inner.urn)
    queue = resource("aws:sqs/queue:Queue", "b-queue", parent=b.urn)
    loose = resource("aws:iam/role:Role", "a-loose")  # named like a's children, but the stack's
    in_c = resource("aws:sqs/queue:Queue", "c-queue", parent=c.urn)
    found = {r.name: r for r in (a, b, outer, c, loose, role, inner, queue, deep, in_c)}
    return Plan(stack="t", config={}, resources=list(found.values())), found


def names(resources: list[Resource]) -> list[str]:
    return [r.name for r in resources]


def test_children_follow_parent_links_at_any_depth_in_registration_order():
    plan, r = tree()
    assert names(plan.children(r["a"])) == ["a-role", "a-part", "a-part-role"]
    assert names(plan.children(r["a"], recursive=False)) == ["a-role", "a-part"]
    assert names(plan.children(r["outer"])) == ["c", "c-queue"]
    assert plan.children(r["a-role"]) == []


def test_within_a_component_type_takes_every_component_of_it_and_filters_by_type():
    plan, _ = tree()
    assert names(plan.within("t:index:Box")) == ["a-role", "a-part", "b-queue", "a-part-role", "c-queue"]
    assert names(plan.within("t:index:Box", type_="aws:iam/role:Role")) == ["a-role", "a-part-role"]
    assert names(plan.within("t:index:Box", name="b")) == ["b-queue"]
    assert names(plan.within("t:index:Outer", type_="aws:sqs/queue:Queue")) == ["c-queue"]
    assert plan.within("t:index:Box", name="b", type_="aws:iam/role:Role") == []


def test_a_component_inside_another_of_its_type_lists_its_children_once():
    plan, r = tree()
    nested = resource("t:index:Box", "a-box", parent=r["a"].urn, custom=False)
    plan.resources += [nested, resource("aws:sqs/queue:Queue", "a-box-queue", parent=nested.urn)]
    assert names(plan.within("t:index:Box", type_="aws:sqs/queue:Queue")) == ["b-queue", "c-queue", "a-box-queue"]


def test_within_a_component_the_plan_lacks_is_an_error_not_an_empty_list():
    plan, _ = tree()
    with pytest.raises(LookupError, match=r"no t:index:Crate in the plan; components: .*t:index:Box"):
        plan.within("t:index:Crate")
    with pytest.raises(LookupError, match=r"no t:index:Box named 'd' in the plan; there are \['a', 'b', 'c'\]"):
        plan.within("t:index:Box", name="d")


def test_within_on_the_real_plans(dev_plan):
    roles = dev_plan.within(KARPENTER, type_="aws:iam/role:Role")
    assert sorted(r.name for r in roles) == ["nim-on-eks-dev-karpenter-controller-role",
                                             "nim-on-eks-dev-karpenter-node-role"]
    # what pulumi-eks creates inside is inside the Cluster component too
    eks = dev_plan.one("eks:index:Cluster")
    assert all(r in dev_plan.within("nim-on-eks:index:Cluster") for r in [eks, *dev_plan.children(eks)])
    plan = plan_for(*THREE_MODELS)
    [sts] = plan.within(NIM_MODEL, "nim-on-eks-dev-nim-llm-llama-3-1-70b-instruct",
                        type_="kubernetes:apps/v1:StatefulSet")
    assert sts.inputs["metadata"]["name"] == "nim-llm-llama-3-1-70b-instruct"
    assert len(plan.within(NIM_MODEL, type_="kubernetes:apps/v1:StatefulSet")) == 3
