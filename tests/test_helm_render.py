"""Every Helm release of the plan, rendered by a real `helm template` against its pinned chart with the exact values
the program passes, goes through the schema gates our own objects go through (tests/conformance.py).

The chart folders are in ../shared/charts (a missing or incomplete one: skipped here, a failure in CI); helm is the
one on PATH (v3.8+) or .tools/helm, which `make test` installs. Renders are cached in .cache/helm.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from planning import versions
from tests import conformance, helm_render
from tests.conftest import kube_version, needs_charts, GATEWAY_FULL, needs_reference, plan_for, unavailable
from tools import mockrun

# Plans whose releases are rendered: the dev stack, and the oldest supported Kubernetes with other monitoring values
# (charts choose templates by the Kubernetes version). Renders identical to one already listed are not repeated.
CONFIGS = {
    "dev": (),
    "k8s-1.33": ("eks_version=1.33", "prometheus_volume_gb=200", "prometheus_retention=30d", "open_webui=false"),
    "gateway-full": GATEWAY_FULL,
}

# Custom resources the charts render whose CRD is not in ../shared/reference, so no schema checks them (yet).
UNCHECKED_KINDS = {
    "kube-prometheus-stack": {"monitoring.coreos.com/v1 Prometheus", "monitoring.coreos.com/v1 Alertmanager"},
}
WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet"}
K8S = versions.DEFAULT_EKS_VERSION  # for the planted defects



def _cases() -> list:
    """One case per distinct render (chart, release, namespace, values, Kubernetes version) of the plans above."""
    params, seen = [], set()
    for config, overrides in CONFIGS.items():
        try:
            plan = plan_for(*overrides)
            failed = plan.error is not None
        except Exception:  # noqa: BLE001 - the test itself reports it
            failed = True
        if failed:
            params.append(pytest.param(overrides, None, id=f"{config}-plan"))
            continue
        # sorted: every pytest-xdist worker must collect the same list, and registration order may vary
        for release, chart, version in sorted(conformance.helm_releases(plan), key=lambda t: t[0].name):
            values, _, _ = helm_render.release_values(release)
            key = json.dumps([chart, version, release.inputs.get("name"), release.inputs.get("namespace"), values,
                              kube_version(plan)], sort_keys=True)
            if key not in seen:
                seen.add(key)
                params.append(pytest.param(overrides, release.name, id=f"{config}-{release.inputs.get('name')}"))
    return params




# Sub-charts ../shared/charts lacks (its README says they are there; its copy of the upstream repo dropped
# charts/* by the chart's .gitignore). The chart's own templates are rendered without them (Prometheus, Alertmanager,
# the operator, its webhooks, rules and RBAC); our values for them are still checked key by key against their
# values.yaml (tests/conformance.py, grafana-12.11.1). Any other missing sub-chart fails in CI.
KNOWN_MISSING_SUBCHARTS = {"kube-prometheus-stack-88.5.3": {"kube-state-metrics", "prometheus-node-exporter", "grafana",
                                                            "prometheus-windows-exporter"}}


def _release(plan: mockrun.Plan, resource_name: str) -> tuple[mockrun.Resource, str, str]:
    [found] = [(r, c, v) for r, c, v in conformance.helm_releases(plan) if r.name == resource_name]
    return found


def _folder_and_off(chart: str, version: str) -> tuple[Path, list[str]]:
    """The chart's folder, complete enough for helm to render, and the values paths that must be switched off for
    the known missing sub-charts; otherwise skip (CI: fail)."""
    folder = _folder(chart, version)
    original = helm_render.chart_folder(chart, version)
    conditions = helm_render.dependency_conditions(original)
    missing = helm_render.missing_dependencies(original)
    return folder, sorted(conditions[m] for m in missing if conditions.get(m))


def _folder(chart: str, version: str) -> Path:
    """The chart's folder in ../shared/charts, complete enough for helm to render; otherwise skip (CI: fail)."""
    folder = helm_render.chart_folder(chart, version)
    if folder is None:
        unavailable(f"no folder for chart {chart} {version} in {helm_render.CHARTS} (looked for a Chart.yaml "
                    f"with that name and version; expected {chart}-{version}/)")
    renderable, missing = helm_render.without_missing_dependencies(folder)
    unknown = set(missing) - KNOWN_MISSING_SUBCHARTS.get(folder.name, set())
    if unknown:
        unavailable(f"{folder} lacks the dependencies its Chart.yaml declares, so helm cannot render it: "
                    f"{', '.join(sorted(unknown))} not in {folder.name}/charts/")
    return renderable


def _render(helm: helm_render.Helm, release: mockrun.Resource, folder: Path, values: dict, version: str,
            cache: Path | None) -> list:
    return helm_render.render(
        helm, folder, name=release.inputs["name"], namespace=release.inputs["namespace"], values=values,
        kube_version=version, include_crds=not release.inputs.get("skipCrds", False), cache=cache,
    )


# ------------------------------------------------------------------------------------ the plan's releases


@needs_charts
@pytest.mark.parametrize(("overrides", "resource_name"), _cases())
def test_release_renders_and_passes_the_schema_gates(overrides, resource_name, helm):
    plan = plan_for(*overrides)
    assert plan.error is None, plan.error
    release, chart, version = _release(plan, resource_name)
    folder, off = _folder_and_off(chart, version)
    values, replaced, secrets = helm_render.release_values(release)
    values = helm_render.switched_off(values, off)  # only the sub-charts ../shared/charts lacks
    assert "[unknown]" not in json.dumps(values) and "[secret]" not in json.dumps(values), replaced
    k8s_version = kube_version(plan)

    try:  # a release with secret values is rendered afresh each time: no secret is written to the cache
        manifests = _render(helm, release, folder, values, k8s_version, None if secrets else helm_render.CACHE)
    except helm_render.HelmError as err:
        pytest.fail(helm_render.redact(str(err), secrets), pytrace=False)

    # a chart of CRDs only (ai-gateway-crds-helm) renders those, every other one a workload
    expected = {"CustomResourceDefinition"} if chart.endswith("-crds-helm") else WORKLOADS
    assert {m.get("kind") for m in manifests if isinstance(m, dict)} & expected, \
        f"{chart} {version} rendered none of {sorted(expected)}: {sorted({m.get('kind') for m in manifests})}"
    problems, unchecked = helm_render.check(manifests, k8s_version)
    assert not problems, helm_render.redact(
        f"{release.inputs['name']} ({chart} {version}, Kubernetes {k8s_version}"
        + (f", stand-ins for {', '.join(replaced)}" if replaced else "") + "):\n" + "\n".join(problems), secrets)
    new = unchecked - UNCHECKED_KINDS.get(chart, set())
    assert not new, (f"{chart} {version} renders custom resources with no CRD in {conformance.REFERENCE}: "
                     f"{sorted(new)}; add the CRD there, or list the kind in UNCHECKED_KINDS")


def test_the_rendering_kubernetes_version_is_the_clusters():
    for overrides in CONFIGS.values():
        plan = plan_for(*overrides)
        assert plan.error is None, plan.error
        assert kube_version(plan) == plan.one("eks:index:Cluster").inputs["version"]


# ------------------------------------------------------------------- the gate catches planted defects


def _dev_release(dev_plan, name: str) -> tuple[mockrun.Resource, Path, dict]:
    release, chart, version = next(t for t in conformance.helm_releases(dev_plan) if t[0].inputs["name"] == name)
    return release, _folder(chart, version), copy.deepcopy(helm_render.release_values(release)[0])


@needs_charts
def test_gate_catches_a_value_of_the_wrong_type(dev_plan, helm):
    release, folder, values = _dev_release(dev_plan, "karpenter")
    assert helm_render.check(_render(helm, release, folder, values, K8S, None), K8S)[0] == []
    values["replicas"] = "two"
    problems, _ = helm_render.check(_render(helm, release, folder, values, K8S, None), K8S)
    assert len(problems) == 1 and problems[0].startswith("Deployment/karpenter: spec/replicas: 'two' is not of type"), \
        problems


@needs_charts
@needs_reference
def test_gate_catches_a_misspelt_field_below_a_free_form_value(dev_plan, helm):
    """`tolerations` is free-form for the values-key gate; only the rendered DaemonSet shows the typo."""
    release, folder, values = _dev_release(dev_plan, "nvidia-device-plugin")
    values["tolerations"][0]["operater"] = values["tolerations"][0].pop("operator")
    assert conformance.release_values_errors(SimpleNamespace(name=release.name, inputs={"values": values}),
                                             "nvidia-device-plugin", "0.20.0") == []
    problems, _ = helm_render.check(_render(helm, release, folder, values, K8S, None), K8S)
    assert problems, "the misspelt toleration passed the gate"
    assert all("tolerations/0" in p and "'operater' was unexpected" in p for p in problems), problems
    assert any(p.startswith("DaemonSet/nvidia-device-plugin:") for p in problems), problems


@needs_charts
@needs_reference
def test_gate_catches_a_bad_custom_resource_rendered_by_a_chart(dev_plan, helm):
    release, folder, values = _dev_release(dev_plan, "dcgm-exporter")
    values["serviceMonitor"]["interval"] = "every 30s"
    problems, unchecked = helm_render.check(_render(helm, release, folder, values, K8S, None), K8S)
    assert len(problems) == 1, problems
    assert problems[0].startswith("ServiceMonitor/dcgm-exporter: spec/endpoints/0/interval: 'every 30s' does not match")
    assert not unchecked


@needs_charts
def test_a_chart_that_fails_to_render_is_reported_with_helms_message(dev_plan, helm):
    release, folder, values = _dev_release(dev_plan, "karpenter")
    del values["settings"]["clusterName"]
    with pytest.raises(helm_render.HelmError, match="Chart cannot be installed without a valid settings.clusterName!"):
        _render(helm, release, folder, values, K8S, None)


@pytest.fixture
def tiny_chart(tmp_path) -> Path:
    """A chart of one ConfigMap whose data comes from the values."""
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
        "  namespace: {{ .Release.Namespace }}\ndata:\n  size: {{ .Values.size | quote }}\n")
    return chart


def test_a_missing_dependency_is_found_before_helm_and_reported_by_helm(tiny_chart, helm):
    (tiny_chart / "Chart.yaml").write_text((tiny_chart / "Chart.yaml").read_text()
                                           + "dependencies:\n  - name: absent-sub\n    version: 1.0.0\n")
    assert helm_render.missing_dependencies(tiny_chart) == ["absent-sub"]
    with pytest.raises(helm_render.HelmError, match="missing in charts/ directory: absent-sub"):
        helm_render.render(helm, tiny_chart, name="t", namespace="ns", values={}, kube_version="1.36", cache=None)


def test_a_template_error_is_reported_with_helms_message(tiny_chart, helm):
    (tiny_chart / "templates" / "cm.yaml").write_text('{{ required "size is required" .Values.nope }}\n')
    with pytest.raises(helm_render.HelmError, match="size is required"):
        helm_render.render(helm, tiny_chart, name="t", namespace="ns", values={}, kube_version="1.36", cache=None)


# -------------------------------------------------------------------------------------------- the helpers


def test_renders_are_cached_by_everything_they_depend_on(tiny_chart, tmp_path, helm):
    cache = tmp_path / "cache"
    args = dict(name="t", namespace="ns", values={"size": "1Gi"}, kube_version="1.36", cache=cache)
    [cm] = helm_render.render(helm, tiny_chart, **args)
    assert cm["data"] == {"size": "1Gi"} and cm["metadata"] == {"name": "t", "namespace": "ns"}
    assert len(list(cache.glob("*.json"))) == 1
    gone = helm_render.Helm("/nonexistent/helm", helm.version)  # a hit never runs helm
    assert helm_render.render(gone, tiny_chart, **args) == [cm]
    for changed in ({"values": {"size": "2Gi"}}, {"namespace": "other"}, {"name": "u"}, {"kube_version": "1.33"}):
        with pytest.raises(OSError):  # a miss: helm would run
            helm_render.render(gone, tiny_chart, **{**args, **changed})
    with pytest.raises(OSError):
        helm_render.render(helm_render.Helm("/nonexistent/helm", "v9.9.9"), tiny_chart, **args)
    (tiny_chart / "values.yaml").write_text("size: 0\n")
    helm_render.folder_digest.cache_clear()
    with pytest.raises(OSError):
        helm_render.render(gone, tiny_chart, **args)


def test_helm_versions_below_3_8_are_refused():
    assert helm_render.parse_version("v4.1.4+g05fa379") == (4, 1, 4)
    assert [helm_render.usable(v) for v in ("v3.7.2+g663a896", "v3.8.0", "v3.19.1", "v4.1.4+g05fa379", "?")] \
        == [False, True, True, True, False]


def test_values_unknown_under_mocks_get_realistic_stand_ins():
    values, replaced = helm_render.realistic({
        "settings": {"clusterName": "[unknown]", "clusterEndpoint": "[unknown]", "queue": "q"},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "[unknown]"}},
        "extraArgs": ["[unknown]", 3],
    })
    assert values == {
        "settings": {"clusterName": "placeholder-clustername",
                     "clusterEndpoint": "https://placeholder-clusterendpoint.example.com", "queue": "q"},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn":
                                           f"arn:aws:iam::{helm_render.ACCOUNT}:role/placeholder-eks-amazonaws-com-role-arn"}},
        "extraArgs": ["placeholder-extraargs", 3],
    }
    assert replaced == ["settings.clusterName", "settings.clusterEndpoint",
                        "serviceAccount.annotations.eks.amazonaws.com/role-arn", "extraArgs[0]"]


def test_secret_values_are_rendered_revealed_and_kept_out_of_messages():
    release = SimpleNamespace(inputs={"values": {"admin": {"password": "[secret]"}, "user": "admin"}},
                              revealed={"values": {"admin": {"password": "hunter2"}, "user": "admin"}})
    values, replaced, secrets = helm_render.release_values(release)
    assert values == {"admin": {"password": "hunter2"}, "user": "admin"} and replaced == []
    assert secrets == ["hunter2"]
    assert helm_render.redact("Secret/x: data/password: 'hunter2' is not valid", secrets) \
        == "Secret/x: data/password: '[secret]' is not valid"


@needs_charts
def test_chart_folders_are_found_by_chart_name_and_version():
    assert helm_render.chart_folder("karpenter", "1.14.1").name == "karpenter-1.14.1"
    assert helm_render.chart_folder("gateway-helm", "1.9.0").name == "gateway-helm-v1.9.0"
    assert helm_render.chart_folder("karpenter", "0.37.0") is None
    assert helm_render.missing_dependencies(helm_render.chart_folder("nvidia-device-plugin", "0.20.0")) == []
