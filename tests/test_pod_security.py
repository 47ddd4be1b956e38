"""Hardened pods (issue 14): every namespace the program creates enforces a Pod Security level, pinned, and every pod
that lands in it, the program's own and the charts' renders, meets that level (tests/pod_security.py checks the
Pod Security Standards). The program's own pods also meet what the level does not ask: no service account token,
a memory limit, a read-only root where chosen, the uids the images support."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from planning import versions
from planning.security import NIM_MEMORY_LIMIT_FACTOR, NIM_SHM_GIB, POD_SECURITY_VERSION
from tests import conformance, helm_render, placement
from tests.conftest import needs_charts, GATEWAY_FULL, THREE_MODELS, plan_for, release
from tests.pod_security import violations

ENFORCE = "pod-security.kubernetes.io/enforce"
# Plans with every pod the program can render: the dev stack (monitoring, Open WebUI, a model at zero, so the HTTP
# add-on) and three models with AIPerf.
PLANS = {"dev": (), "three-models": (*THREE_MODELS, "aiperf=true"), "gateway-full": GATEWAY_FULL}
# Why a namespace enforces less than restricted (the comment at its Namespace says it too).
LESS_THAN_RESTRICTED = {"monitoring": "privileged"}



def levels(plan) -> dict[str, dict[str, str]]:
    return {r.inputs["metadata"]["name"]: r.inputs["metadata"].get("labels") or {}
            for r in plan.of_type("kubernetes:core/v1:Namespace")}


def own_pods(plan) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, name, pod spec) of every pod template the program renders itself."""
    found = []
    for r in plan.resources:
        kind = r.type.rsplit(":", 1)[-1] if r.type.startswith("kubernetes:") else ""
        if kind in placement.POD_TEMPLATE_KINDS:
            meta = r.inputs["metadata"]
            found.append((meta["namespace"], meta["name"], r.inputs["spec"]["template"]["spec"]))
    return found


@pytest.mark.parametrize("name", PLANS)
def test_every_namespace_enforces_a_pinned_level(name):
    plan = plan_for(*PLANS[name])
    for ns, labels in levels(plan).items():
        level = labels.get(ENFORCE)
        assert level == LESS_THAN_RESTRICTED.get(ns, "restricted"), ns
        assert labels[f"{ENFORCE}-version"] == POD_SECURITY_VERSION, ns
        assert labels["pod-security.kubernetes.io/warn"] == "restricted", ns
    assert POD_SECURITY_VERSION == f"v{versions.SUPPORTED_EKS_VERSIONS[0]}"


@pytest.mark.parametrize("name", PLANS)
def test_the_programs_pods_meet_their_namespaces_level(name):
    plan = plan_for(*PLANS[name])
    ns_levels = levels(plan)
    pods = own_pods(plan)
    assert {"nim", "open-webui"} <= {ns for ns, _, _ in pods}
    for ns, pod_name, pod in pods:
        assert violations(ns_levels[ns][ENFORCE], pod) == [], (ns, pod_name)
        # and restricted, wherever they land: none of the program's own pods needs less
        assert violations("restricted", pod) == [], (ns, pod_name)


def test_the_checker_catches_what_restricted_forbids(dev_plan):
    """Each planted mistake in the NIM pod is one violation (break the spec, the checker names it)."""
    [(_, _, pod)] = [p for p in own_pods(dev_plan) if p[1].startswith("nim-llm-") and not p[1].endswith("precache")]
    assert violations("restricted", pod) == []

    def planted(change) -> list[str]:
        broken = copy.deepcopy(pod)
        change(broken)
        return violations("restricted", broken)

    c = lambda p: p["containers"][0]  # noqa: E731
    assert planted(lambda p: c(p)["securityContext"].update(allowPrivilegeEscalation=True))
    assert planted(lambda p: c(p)["securityContext"].update(capabilities={"drop": ["NET_RAW"]}))
    assert planted(lambda p: c(p)["securityContext"].update(runAsNonRoot=False))
    assert planted(lambda p: p["securityContext"].pop("seccompProfile"))
    assert planted(lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}))
    assert planted(lambda p: p.update(hostNetwork=True))
    assert planted(lambda p: c(p)["securityContext"].update(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}))
    # baseline allows what only restricted forbids, and forbids host access
    broken = copy.deepcopy(pod)
    c(broken)["securityContext"] = {}
    assert violations("baseline", broken) == [] and violations("restricted", broken)
    broken["volumes"].append({"name": "h", "hostPath": {"path": "/"}})
    assert violations("baseline", broken) and violations("privileged", broken) == []


def test_hardening_beyond_the_standard(dev_plan):
    plan = plan_for(*PLANS["three-models"])
    pods = {name: pod for _, name, pod in own_pods(plan)}
    for name, pod in pods.items():
        # none of the program's pods calls the Kubernetes API
        assert pod["automountServiceAccountToken"] is False, name
        for c in pod["containers"] + pod.get("initContainers", []):
            # a leak stops at the container's limit, not at the node's memory
            assert c["resources"]["limits"]["memory"], (name, c["name"])
    webui, perf = pods["open-webui"], pods["aiperf"]
    # Open WebUI: non-root, its data volume the group's, a read-only root with the paths it writes writable
    assert webui["securityContext"]["runAsUser"] == webui["securityContext"]["fsGroup"] != 0
    [main] = webui["containers"]
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in main["volumeMounts"]}
    assert {"/app/backend/data", "/app/backend/open_webui/static", "/tmp"} <= mounts
    assert {"name": "HOME", "value": "/tmp"} in main["env"]
    [init] = webui["initContainers"]
    assert init["image"] == main["image"] and init["securityContext"]["readOnlyRootFilesystem"] is True
    # AIPerf: non-root, its HOME, venv and working directory an emptyDir, for the install as for the runs
    [c], [install] = perf["containers"], perf["initContainers"]
    assert perf["securityContext"]["runAsUser"] != 0
    assert c["workingDir"] == "/work"
    for each in (c, install):
        assert each["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"name": "HOME", "value": "/work"} in each["env"]
        assert {"/work", "/tmp"} <= {m["mountPath"] for m in each["volumeMounts"]}
    # NIM: host memory limited to a multiple of its request; not a read-only root (components/nim.py says why)
    nim = [p for n, p in pods.items() if n.startswith("nim-llm-") and not n.endswith("precache")]
    assert len(nim) == 3
    for pod in nim:
        [c] = pod["containers"]
        req, lim = c["resources"]["requests"]["memory"], c["resources"]["limits"]["memory"]
        shm = next(v for v in pod["volumes"] if v["name"] == "dshm")["emptyDir"]["sizeLimit"]
        assert shm == f"{NIM_SHM_GIB}Gi"
        assert int(lim.removesuffix("Gi")) == NIM_MEMORY_LIMIT_FACTOR * int(req.removesuffix("Gi")) + NIM_SHM_GIB
        assert c["securityContext"]["readOnlyRootFilesystem"] is False




@needs_charts
@pytest.mark.parametrize("name", PLANS)
def test_the_charts_pods_meet_their_namespaces_level(name, helm):
    """Every pod a release renders, in the namespace it lands in, meets the level that namespace enforces (a
    namespace the program does not create, kube-system, enforces nothing)."""
    plan = plan_for(*PLANS[name])
    ns_levels = levels(plan)
    version = plan.config.get("nim-on-eks:eks_version") or versions.DEFAULT_EKS_VERSION
    checked = set()
    for rel, chart, chart_version in conformance.helm_releases(plan):
        folder = helm_render.chart_folder(chart, chart_version)
        assert folder is not None, chart
        renderable, missing = helm_render.without_missing_dependencies(folder)
        conditions = helm_render.dependency_conditions(folder)
        values, _, secrets = helm_render.release_values(rel)
        values = helm_render.switched_off(values, [conditions[m] for m in missing if conditions.get(m)])
        namespace = rel.inputs["namespace"]
        manifests = helm_render.render(helm, renderable, name=rel.inputs["name"], namespace=namespace,
                                       values=values, kube_version=version, include_crds=False,
                                       cache=None if secrets else helm_render.CACHE)
        for m in manifests:
            if not isinstance(m, dict) or m.get("kind") not in placement.POD_TEMPLATE_KINDS:
                continue
            ns = (m.get("metadata") or {}).get("namespace") or namespace
            level = (ns_levels.get(ns) or {}).get(ENFORCE, "privileged")
            pod = m["spec"]["template"]["spec"]
            assert violations(level, pod) == [], (chart, m["metadata"]["name"], ns, level)
            checked.add((ns, level))
    assert ("keda", "restricted") in checked


def test_grafana_reads_configmaps_of_its_namespace_only(dev_plan):
    """Grafana's sidecars watch ConfigMaps of `monitoring` under a Role (not every Secret of the cluster under the
    chart's default ClusterRole): every dashboard of the plan is a ConfigMap there. (The chart's own dashboards and
    data source go to the release's namespace, kube-prometheus-stack templates/grafana/*: they do not render here,
    the Grafana sub-chart is absent from ../shared/charts.)"""
    grafana = release(dev_plan, "kube-prometheus-stack").inputs["values"]["grafana"]
    assert grafana["rbac"] == {"namespaced": True}
    for sidecar in ("dashboards", "datasources"):
        assert grafana["sidecar"][sidecar]["searchNamespace"] == "monitoring", sidecar
        assert grafana["sidecar"][sidecar]["resource"] == "configmap", sidecar
    labelled = [r for r in dev_plan.resources if r.type.startswith("kubernetes:")
                and "grafana_dashboard" in (r.inputs.get("metadata", {}).get("labels") or {})]
    assert labelled and all(r.type == "kubernetes:core/v1:ConfigMap" and r.inputs["metadata"]["namespace"] ==
                            "monitoring" for r in labelled)
