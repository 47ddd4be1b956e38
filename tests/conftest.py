"""What the tests share: the real program run under Pulumi mocks (tools/mockrun.py) with the real stack files, the
stack configs more than one test module plans, config parsing, resource selection, and the prerequisite markers.

pytest finds the fixtures here by name (`dev_plan`); plain helpers and constants are imported from `tests.conftest`
(tests/ is a package, so that name is unambiguous: pytest's advice for importing from a conftest.py). Test modules
never import from each other. tests/conformance.py and tests/helm_render.py are support libraries, not tests.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pulumi  # noqa: E402

from planning.catalog import load_catalog  # noqa: E402
from planning import versions  # noqa: E402
from planning.config import ConfigError, parse_config  # noqa: E402
from tests import conformance, helm_render  # noqa: E402
from tools import mockrun  # noqa: E402
from tools.baseline import THREE_MODELS  # noqa: E402,F401 - the second reference stack, shared with the baseline


@functools.lru_cache(maxsize=None)
def _plan(stack: str, overrides: tuple[str, ...]) -> mockrun.Plan:
    return mockrun.run(stack, list(overrides))


def plan_for(*overrides: str, stack: str = "dev") -> mockrun.Plan:
    """The plan of a stack with `KEY=VALUE` overrides; cached, so each config runs once per session."""
    return _plan(stack, tuple(overrides))


@pytest.fixture(scope="session")
def dev_plan() -> mockrun.Plan:
    plan = plan_for()
    assert plan.error is None, plan.error
    return plan


# Stack configs more than one module plans (THREE_MODELS, above, is the other): the big GPUs, on demand only.
P5 = ('gpu_instance_families=["p4de","p5"]', 'gpu_capacity_types=["on-demand"]', "gpu_limit=32")
# The gateway at its fullest: internet-facing with TLS, and a key with a token limit (so the rate limit service,
# its Redis and the BackendTrafficPolicy exist).
GATEWAY_FULL = ("public_endpoint=true",
                "certificate_arn=arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
                'api_keys=["ci", {"name": "team-a", "tokens_per_minute": 20000, "rotation": 1}]')


# ------------------------------------------------------------------------------------------- stack config

CATALOG = load_catalog()
BASE = {
    "aws:region": "us-west-2",
    "nim-on-eks:ngc_api_key": "nvapi-test",
    "nim-on-eks:nim_models": '["meta/llama3-8b-instruct"]',
}
SECRETS = {"nim-on-eks:ngc_api_key"}


def parse(**overrides: str):
    """The typed config of BASE with `key=value` overrides (a value of None removes the key)."""
    raw = dict(BASE)
    for key, value in overrides.items():
        full = key if ":" in key else f"nim-on-eks:{key}"
        if value is None:
            raw.pop(full, None)
        else:
            raw[full] = value
    return parse_config(raw, SECRETS, "nim-on-eks", "dev", CATALOG)


def problems(**overrides: str) -> list[str]:
    """The problems the config refuses, as it names them to the user."""
    with pytest.raises(ConfigError) as info:
        parse(**overrides)
    assert isinstance(info.value, pulumi.RunError)
    return info.value.problems


# ----------------------------------------------------------------------------------- resource selection
# By the component a resource belongs to (mockrun.Plan.within), by what it is attached to, or, for a Kubernetes
# object or a Helm release, by the name it has in the cluster; not by substrings of Pulumi names.

CLUSTER = "nim-on-eks:index:Cluster"
KARPENTER = "nim-on-eks:index:Karpenter"
STORAGE = "nim-on-eks:index:Storage"
MONITORING = "nim-on-eks:index:Monitoring"
ALERTS = "nim-on-eks:index:Alerts"
NIM_MODEL = "nim-on-eks:index:NimModel"
OPEN_WEBUI = "nim-on-eks:index:OpenWebUI"
AIPERF = "nim-on-eks:index:AIPerf"


def obj(plan: mockrun.Plan, type_: str, name: str) -> mockrun.Resource:
    """The one Kubernetes object of `type_` whose metadata.name is `name`."""
    [found] = [r for r in plan.of_type(type_) if r.inputs["metadata"]["name"] == name]
    return found


def release(plan: mockrun.Plan, name: str) -> mockrun.Resource:
    """The one Helm release named `name` in the cluster."""
    [found] = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == name]
    return found


def attached_to(plan: mockrun.Plan, role: mockrun.Resource) -> list[mockrun.Resource]:
    """The managed-policy attachments of an IAM role."""
    return [a for a in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
            if a.inputs["role"] == role.outputs["name"]]


# CI (env CI=true) runs beside ../shared: there a missing prerequisite is a failure, never a silent skip.
CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """A prerequisite of the test is absent: skip it, or fail it in CI."""
    if CI:
        pytest.fail(f"{reason} (CI=true: a missing prerequisite fails the test)", pytrace=False)
    pytest.skip(reason)


def needs_dir(path: Path, reason: str) -> pytest.MarkDecorator:
    """Mark a test that needs the folder `path`: skipped when it is absent, failed in CI."""
    return pytest.mark.needs_dir(path, reason=reason)


needs_charts = needs_dir(helm_render.CHARTS, f"{helm_render.CHARTS} is absent: the pinned charts live beside the "
                                             "clone in CI (see ../shared/charts/README.md)")


def kube_version(plan: mockrun.Plan) -> str:
    """The Kubernetes version a plan's cluster runs: what its charts are rendered for."""
    return plan.config.get(f"{mockrun.PROJECT}:eks_version") or versions.DEFAULT_EKS_VERSION


def render_release(plan: mockrun.Plan, helm: helm_render.Helm, chart_name: str) -> tuple[list, list[str]]:
    """`helm template` of the plan's release of `chart_name` as the plan passes it (CRDs left out), and the
    sub-charts ../shared/charts lacks (switched off, so not rendered)."""
    for release_, chart, version in conformance.helm_releases(plan):
        if chart != chart_name:
            continue
        folder = helm_render.chart_folder(chart, version)
        renderable, missing = helm_render.without_missing_dependencies(folder)
        conditions = helm_render.dependency_conditions(folder)
        values, _, secrets = helm_render.release_values(release_)
        values = helm_render.switched_off(values, [conditions[m] for m in missing if conditions.get(m)])
        return helm_render.render(helm, renderable, name=release_.inputs["name"],
                                  namespace=release_.inputs["namespace"], values=values,
                                  kube_version=kube_version(plan), include_crds=False,
                                  cache=None if secrets else helm_render.CACHE), missing
    raise AssertionError(f"no {chart_name} release in the plan")


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_dir(path, reason): needs that folder; skipped without it, failed in CI")


def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs_dir"):
        if not Path(mark.args[0]).is_dir():
            unavailable(mark.kwargs.get("reason") or f"{mark.args[0]} is absent")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI any skip fails, however it was asked for (a `skipif`, a `pytest.skip` in a test or fixture): a test
    that needs something CI lacks must never pass unnoticed there."""
    report = (yield).get_result()
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"{reason} (CI=true: a test that would skip fails)"


needs_reference = needs_dir(conformance.REFERENCE, conformance.SKIP_REASON)


@pytest.fixture(scope="session")
def helm() -> helm_render.Helm:
    """The helm binary the render tests run (helm 3.8+ on PATH, or the one `make test` puts in .tools)."""
    found = helm_render.find_helm()
    if found is None:
        unavailable(f"no helm {helm_render.MIN_HELM[0]}.{helm_render.MIN_HELM[1]}+ on PATH and no "
                    f"{helm_render.TOOL_HELM}: `make test` installs it (`make .tools/helm`)")
    return found
