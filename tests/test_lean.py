"""The always-on footprint (issue 13): what runs on the core node group and why it holds it, what runs on
Karpenter's CPU NodePool and what each of those pods asks for, which architectures each pod's images run on, and
that everything on a NodePool goes before it on destroy.

Where pods may land is worked out by the scheduler's rules over the real plan and the real charts' renders
(tests/placement.py), not read from the component code.
"""

from __future__ import annotations

import copy
import json

import pytest

from planning import versions
from planning.catalog import load_catalog
from planning.instances import load_instances
from planning.pools import CORE_PODS, LEGACY_CORE, core_load, core_node_group_name, core_shortfall
from planning.scheduling import ADDON_PLACEMENT, CORE_TAINT
from planning.workloads import CONFIG_RELOADER, CPU_POOL, GATEWAY, GRAFANA_SIDECAR, HTTP_ADD_ON, KARPENTER_CONTROLLER, \
    RATE_LIMITS
from tests import helm_render, placement
from tests.conftest import needs_charts, ROOT, THREE_MODELS, obj, parse, plan_for, problems, release, unavailable
from tools import checks

DATA = load_instances()
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
# Plans whose pods are placed: the dev stack (monitoring, Open WebUI), three models with AIPerf, and a stack
# with nothing but the models (no CPU pod at all).
PLANS = {
    "dev": (),
    "three-models": (*THREE_MODELS, "aiperf=true"),
    "models-only": ("monitoring=false", "open_webui=false"),
}
# The kube-prometheus-stack sub-charts ../shared/charts lacks: their pods do not render here (tests/test_helm_render.py
# KNOWN_MISSING_SUBCHARTS); their CPU_POOL entries are checked against the release's values instead.
UNRENDERED = {"kube-prometheus-stack": {"grafana", "kube-state-metrics", "prometheus-node-exporter",
                                        "prometheus-windows-exporter"}}
UNRENDERED_POOL_ENTRIES = {CPU_POOL["grafana"].name, CPU_POOL["kube-state-metrics"].name,
                           # pods EG starts at run time: tests/test_gateway.py checks what they ask
                           CPU_POOL["envoy-proxy"].name, CPU_POOL["envoy-ratelimit"].name}



def switches(plan) -> dict[str, bool]:
    cfg = plan.config
    on = {k: cfg.get(f"nim-on-eks:{k}", {"monitoring": "true", "open_webui": "true", "aiperf": "false"}[k])
          == "true" for k in ("monitoring", "open_webui", "aiperf")}
    # the HTTP add-on runs when a model can be at zero (or monitoring is off): the plan shows whether it is there
    return {**on, HTTP_ADD_ON: any(r.name.endswith("-scaling-http-add-on") for r in plan.resources),
            GATEWAY: any(r.name.endswith("-gateway-envoy-gateway") for r in plan.resources),
            RATE_LIMITS: any(r.name.endswith("-gateway-redis") for r in plan.resources)}




_PODS: dict[str, list[placement.Pod]] = {}


def all_pods(name: str, helm: helm_render.Helm) -> list[placement.Pod]:
    """Every pod template of a plan: its own and its releases' renders (unrendered sub-charts aside)."""
    if name not in _PODS:
        plan = plan_for(*PLANS[name])
        assert plan.error is None, plan.error
        rendered, missing = placement.render_releases(plan, helm)
        for chart, subcharts in missing.items():
            unknown = set(subcharts) - UNRENDERED.get(chart, set())
            if unknown:
                unavailable(f"{chart} lacks sub-charts {sorted(unknown)} in {helm_render.CHARTS}")
        _PODS[name] = placement.pods_of_plan(plan) + rendered
    return _PODS[name]


# ------------------------------------------------------------------------------------------ core node group


def test_core_node_group_is_two_graviton_t4g_medium_tainted(dev_plan):
    ng = dev_plan.one(NODE_GROUP).inputs
    assert ng["instanceTypes"] == ["t4g.medium"] and DATA.types["t4g.medium"].arch == "arm64"
    assert ng["amiType"] == "AL2023_ARM_64_STANDARD" == versions.CORE_AMI_TYPES["arm64"]
    assert ng["scalingConfig"]["minSize"] == ng["scalingConfig"]["desiredSize"] == 2
    assert ng["taints"] == [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}]
    assert ng["labels"] == {"nim-on-eks/node-pool": "core"}


@pytest.mark.parametrize("instance_type, ami_type", [
    ("m5.xlarge", "AL2023_x86_64_STANDARD"), ("t3.medium", "AL2023_x86_64_STANDARD"),
    ("m7g.large", "AL2023_ARM_64_STANDARD"), ("c7g.xlarge", "AL2023_ARM_64_STANDARD"),
])
def test_the_ami_type_follows_the_core_types_architecture(instance_type, ami_type):
    ng = plan_for(f"core_instance_type={instance_type}").one(NODE_GROUP).inputs
    assert (ng["instanceTypes"], ng["amiType"]) == ([instance_type], ami_type)
    assert ng["nodeGroupName"] == core_node_group_name(instance_type)


def test_a_new_core_type_is_a_new_group_under_the_same_urn():
    """EKS cannot change a managed node group's instance or AMI type (planning/pools.py): a new type gets a new EKS
    name, so Pulumi replaces it create-first; the resource (its URN) stays, so nothing else moves. The former
    default keeps its group's name, and with its disk nothing but the taint changes: an in-place update.
    tests/data/core_before_issue_13.json: the dev stack's core node group and launch template before issue 13."""
    recorded = json.loads((ROOT / "tests" / "data" / "core_before_issue_13.json").read_text())
    [(urn, old)] = [(u, r) for u, r in recorded.items() if r["type"] == NODE_GROUP]
    assert old["inputs"]["nodeGroupName"] == LEGACY_CORE[1] and old["inputs"]["instanceTypes"] == [LEGACY_CORE[0]]
    new = plan_for().one(NODE_GROUP)
    assert new.urn == urn and new.inputs["nodeGroupName"] != old["inputs"]["nodeGroupName"]
    kept = plan_for("core_instance_type=m5.xlarge", "core_disk_gb=100").one(NODE_GROUP)
    assert kept.urn == urn
    changed = {k for k in set(kept.inputs) | set(old["inputs"]) if kept.inputs.get(k) != old["inputs"].get(k)}
    assert changed == {"taints"}, changed  # updatable in place (UpdateNodegroupConfig), unlike the type
    recorded_template = next(r for r in recorded.values() if r["type"] == "aws:ec2/launchTemplate:LaunchTemplate")
    template = plan_for("core_instance_type=m5.xlarge", "core_disk_gb=100").one(
        "aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs == recorded_template["inputs"]


def test_the_core_arithmetic():
    """What lands on a core node (planning/pools.py CORE_PODS) against what a t4g.medium can allocate."""
    load = core_load(2, {"monitoring": True})
    # aws-node with the network policy agent 50m; the EBS CSI controller's 7 and node plugin's 3 containers at 10m/40Mi
    assert load.one_node == (500 + 100 + 70 + 600 + 50 + 100 + 0 + 30 + 0 + 0, 1024 + 70 + 280 + 384 + 120, 10)
    assert load.all_nodes == (2 * (500 + 100 + 70 + 600) + 2 * (50 + 100 + 30), 2 * (1024 + 70 + 280 + 384) + 2 * 120,
                              2 * 4 + 2 * 6)
    medium = DATA.types["t4g.medium"]
    assert (medium.alloc_cpu_m, medium.alloc_memory_mib, medium.alloc_pods) == (1930, 3187, 17)
    assert core_shortfall(medium, 2, {"monitoring": True}) == []
    assert core_shortfall(DATA.types["t4g.small"], 2, {"monitoring": True}) == [
        "one node: memory 1878 MiB > 1359 MiB", "2 nodes: memory 3756 MiB > 2718 MiB"]
    assert core_shortfall(DATA.types["m7g.medium"], 2, {"monitoring": False})[0] == \
        "one node: CPU 1450m > 940m, pods 9 > 8"
    # Karpenter's requests are the ones its release asks for
    assert next(p for p in CORE_PODS if p.name == "karpenter").cpu_m == KARPENTER_CONTROLLER.cpu_m


def test_karpenter_asks_for_what_the_arithmetic_counts(dev_plan):
    values = release(dev_plan, "karpenter").inputs["values"]
    assert values["controller"]["resources"]["requests"] == KARPENTER_CONTROLLER.as_k8s() == {"cpu": "500m",
                                                                                              "memory": "1Gi"}
    assert values["replicas"] == next(p for p in CORE_PODS if p.name == "karpenter").replicas


@pytest.mark.parametrize("instance_type, expected", [
    ("t4g.small", "core_instance_type: t4g.small cannot hold what runs on the core nodes (Karpenter, CoreDNS, the "
                  "CSI controllers, the node DaemonSets): one node: memory 1878 MiB > 1359 MiB"),
    ("m8g.medium", "core_instance_type: m8g.medium cannot hold what runs on the core nodes"),
    ("m6a.large", "core_instance_type: 'm6a.large' is not valid; allowed: an instance type without GPUs that "
                  "data/instance_types.yaml describes"),
    ("g5.xlarge", "core_instance_type: 'g5.xlarge' is not valid"),
])
def test_core_types_that_cannot_hold_the_core_are_refused(instance_type, expected):
    found = problems(core_instance_type=instance_type)
    assert any(p.startswith(expected) for p in found), found


def test_core_types_that_hold_it_are_accepted():
    for instance_type in ("t4g.medium", "t3.medium", "m5.xlarge", "m7g.large"):
        assert parse(core_instance_type=instance_type).core.instance_type == instance_type


# --------------------------------------------------------------------------------------- the core taint


def tolerates_core(tolerations: list[dict]) -> bool:
    pod = placement.Pod("", "", "", {"tolerations": tolerations}, 1)
    return placement.tolerates(pod, CORE_TAINT)


def test_karpenter_tolerates_the_core_taint_and_selects_the_core(dev_plan):
    values = release(dev_plan, "karpenter").inputs["values"]
    assert tolerates_core(values["tolerations"])
    assert values["nodeSelector"]["nim-on-eks/node-pool"] == "core"


@pytest.mark.parametrize("addon, path", [("coredns", ()), ("aws-ebs-csi-driver", ("controller",)),
                                         ("aws-efs-csi-driver", ("controller",))])
def test_core_add_ons_tolerate_the_taint_and_select_the_core(dev_plan, addon, path):
    [found] = [a for a in dev_plan.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == addon]
    config = json.loads(found.inputs["configurationValues"])
    assert config == ADDON_PLACEMENT[addon]
    for key in path:
        config = config[key]
    assert set(config) == {"nodeSelector", "tolerations"}  # keys of the add-on's configuration schema
    assert config["nodeSelector"] == {"nim-on-eks/node-pool": "core"}
    assert tolerates_core(config["tolerations"])


@needs_charts
@pytest.mark.parametrize("name", PLANS)
def test_nothing_else_may_land_on_the_core_nodes(name, helm):
    """Of the plan's pods only Karpenter and node DaemonSets may land on a core node; of the rest, none even
    tolerates the core taint (no stray toleration waits for a selector to be dropped)."""
    plan = plan_for(*PLANS[name])
    core = [n for n in placement.nodes(plan) if n.pool == "core"]
    pods = all_pods(name, helm)
    on_core = {(p.kind, p.name) for p in pods if any(placement.may_land(p, n) for n in core)}
    assert {k for k in on_core if k[0] != "DaemonSet"} == {("Deployment", "karpenter")}
    tolerating = {(p.kind, p.name) for p in pods if p.kind != "DaemonSet" and placement.tolerates(p, CORE_TAINT)}
    assert tolerating == {("Deployment", "karpenter")}
    karpenter = next(p for p in pods if p.name == "karpenter")
    assert karpenter.replicas == 2 and placement.tolerates(karpenter, CORE_TAINT)  # as rendered by its chart
    # a pod that says nothing of placement (what a chart renders by default) lands on Karpenter's CPU nodes only:
    # the taint keeps it off the core, as the GPU taint keeps it off GPU nodes
    bare = placement.Pod("", "Deployment", "bare", {"containers": []}, 1)
    assert {n.pool for n in placement.nodes(plan) if placement.may_land(bare, n)} == {"cpu"}


def test_the_placement_rules_see_a_stray_toleration():
    plan = plan_for()
    core = next(n for n in placement.nodes(plan) if n.pool == "core")
    webui = next(p for p in placement.pods_of_plan(plan) if p.name == "open-webui")
    assert not placement.may_land(webui, core)
    stray = copy.deepcopy(webui)
    stray.spec["tolerations"] = [{"key": "CriticalAddonsOnly", "operator": "Exists"}]
    stray.spec["affinity"] = {}
    assert placement.may_land(stray, core)


# ------------------------------------------------------------------------------------------ CPU NodePool


def cpu_pool(plan):
    return plan.one(NODE_POOL, "nim-on-eks-dev-karpenter-cpu-pool").inputs["spec"]


def requirement_map(spec) -> dict[str, tuple[str, list[str]]]:
    return {r["key"]: (r["operator"], r["values"]) for r in spec["template"]["spec"]["requirements"]}


def test_cpu_pool_defaults(dev_plan):
    spec = cpu_pool(dev_plan)
    assert requirement_map(spec) == {
        "karpenter.k8s.aws/instance-family": ("In", ["m7g", "m8g", "c7g", "c8g", "m6g", "r7g", "m7i", "m6i", "c6i",
                                                     "m5"]),
        "karpenter.sh/capacity-type": ("In", ["spot", "on-demand"]),  # spot first, on-demand when spot is short
        "kubernetes.io/arch": ("In", ["arm64", "amd64"]),
        "kubernetes.io/os": ("In", ["linux"]),
    }
    assert spec["disruption"] == {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "10m",
                                  "budgets": [{"nodes": "1"}]}
    assert spec["limits"] == {"cpu": "16"}
    assert "taints" not in spec["template"]["spec"]


def test_default_cpu_families_are_the_non_burstable_ones_in_the_data():
    families = parse().cpu.instance_families
    cpu = DATA.cpu_types().values()
    assert set(families) == {t.family for t in cpu if not t.burstable}
    assert {DATA.family_arch()[f] for f in families} == {"amd64", "arm64"}


def test_cpu_pool_from_config():
    spec = cpu_pool(plan_for('cpu_instance_families=["m7i","m6i"]', 'cpu_capacity_types=["on-demand"]', "cpu_limit=8"))
    assert requirement_map(spec)["karpenter.k8s.aws/instance-family"] == ("In", ["m7i", "m6i"])
    assert requirement_map(spec)["kubernetes.io/arch"] == ("In", ["amd64"])  # x86 families: no Graviton node
    assert requirement_map(spec)["karpenter.sh/capacity-type"] == ("In", ["on-demand"])
    assert spec["limits"] == {"cpu": "8"}
    # Graviton only: every CPU-pool pod must be multi-arch, so no pre-cache Job (the NIM image is amd64)
    graviton = cpu_pool(plan_for("cpu_instance_families=m7g,t4g",
                                 'nim_models=[{"name": "meta/llama3-8b-instruct", "precache": false}]'))
    assert requirement_map(graviton)["kubernetes.io/arch"] == ("In", ["arm64"])


@pytest.mark.parametrize("overrides, expected", [
    ({"cpu_instance_families": '["g5"]'}, "cpu_instance_families: '[\"g5\"]' is not valid; allowed: a non-empty list "
                                          "of distinct CPU families in data/instance_types.yaml from m5, m6i"),
    ({"cpu_instance_families": '["m7g", "m7g"]'}, "cpu_instance_families: '[\"m7g\", \"m7g\"]' is not valid"),
    ({"cpu_capacity_types": '["reserved"]'}, "cpu_capacity_types: '[\"reserved\"]' is not valid; allowed: a "
                                             "non-empty list of distinct capacity types from spot, on-demand"),
    ({"cpu_limit": "0"}, "cpu_limit: '0' is not valid; allowed: a whole number from 1 to 1024"),
    ({"cpu_instance_families": '["m7g", "c8g"]', "aiperf": "true"},
     "cpu_instance_families: m7g, c8g give arm64 nodes only, but aiperf (aiperf) runs on amd64 only; "
     "allowed: add a family of that architecture, such as m7i"),
])
def test_cpu_config_validation(overrides, expected):
    found = problems(**overrides)
    assert any(p.startswith(expected) for p in found), found


def test_graviton_only_families_are_fine_without_aiperf_or_pre_caching():
    no_precache = '[{"name": "meta/llama3-8b-instruct", "precache": false}]'
    assert parse(cpu_instance_families='["m7g"]', nim_models=no_precache).cpu.instance_families == ("m7g",)


# ------------------------------------------------------------------------------------------ architectures


@needs_charts
@pytest.mark.parametrize("name", PLANS)
def test_every_pod_on_an_arm64_node_runs_images_built_for_arm64(name, helm):
    """A pod that may land on a Graviton node (the core, the CPU pool) must run images recorded as arm64-capable
    in planning/versions.py IMAGE_ARCHES; GPU-only pods (amd64 nodes) need not."""
    plan = plan_for(*PLANS[name])
    kinds = placement.nodes(plan)
    assert {n.arch for n in kinds if n.pool == "core"} == {"arm64"}
    nim = {f"{m.image}:{m.tag}" for m in load_catalog().models.values()}
    for pod in all_pods(name, helm):
        for node in (n for n in kinds if placement.may_land(pod, n)):
            for image in map(placement.image_key, pod.images):
                if node.arch == "amd64" and image in nim:
                    continue  # NIM on GPU nodes (amd64): pinned in models.yaml
                arches, _ = versions.IMAGE_ARCHES.get(image, ((), ""))
                assert node.arch in arches, (f"{pod.kind} {pod.name} may land on {node.pool} {node.arch} nodes but "
                                             f"its image {image} is not recorded as built for {node.arch}")


@needs_charts
@pytest.mark.parametrize("name", PLANS)
def test_every_pod_has_somewhere_to_land(name, helm):
    plan = plan_for(*PLANS[name])
    kinds = placement.nodes(plan)
    for pod in all_pods(name, helm):
        if pod.kind != "DaemonSet":  # a DaemonSet runs where its nodes are (MPS-capable GPUs, say), maybe nowhere
            assert any(placement.may_land(pod, n) for n in kinds), f"{pod.kind} {pod.name} fits no node"


def test_the_arm64_check_catches_an_amd64_image_on_a_graviton_node():
    plan = plan_for("aiperf=true")
    pod = next(p for p in placement.pods_of_plan(plan) if p.name == "aiperf")
    arm = [n for n in placement.nodes(plan) if n.pool == "cpu" and n.arch == "arm64"]
    assert arm and not any(placement.may_land(pod, n) for n in arm)  # its nodeSelector: amd64
    planted = copy.deepcopy(pod)
    del planted.spec["nodeSelector"]
    assert any(placement.may_land(planted, n) for n in arm)
    assert "arm64" not in versions.IMAGE_ARCHES[versions.AIPERF_IMAGE][0]


def test_every_add_on_on_the_core_runs_on_its_architecture(dev_plan):
    """The EKS add-ons with pods on the core nodes (their DaemonSets, CoreDNS, the CSI controllers), pulumi-eks's
    vpc-cni and kube-proxy included, are built for the core's architecture."""
    arch = DATA.types[parse().core.instance_type].arch
    names = {a.inputs["addonName"] for a in dev_plan.of_type("aws:eks/addon:Addon")}
    assert names == {"vpc-cni", "kube-proxy", "eks-pod-identity-agent", "coredns", "aws-efs-csi-driver",
                     "aws-ebs-csi-driver"}
    for name in names:
        assert arch in versions.ADDON_ARCHES[name][0], name


def test_every_recorded_image_says_where_it_was_checked():
    for image, (arches, checked) in versions.IMAGE_ARCHES.items():
        assert arches and set(arches) <= {"amd64", "arm64"} and checked, image


# ---------------------------------------------------------------------------------- the CPU pool's pods


@needs_charts
@pytest.mark.parametrize("name", PLANS)
def test_every_cpu_pool_pod_asks_what_cpu_pool_declares(name, helm):
    """Each long-running pod that may land on a CPU node has its entry in planning/workloads.py CPU_POOL, switched
    on with the config, with the replicas and (all containers') requests the scheduler will see; no entry is left
    without its pod. Jobs (the chart's install hooks) run minutes and are left out."""
    plan = plan_for(*PLANS[name])
    cpu_nodes = [n for n in placement.nodes(plan) if n.pool == "cpu"]
    on_cpu = {p.name: p for p in all_pods(name, helm)
              if p.kind not in ("DaemonSet", "Job") and any(placement.may_land(p, n) for n in cpu_nodes)}
    declared = {w.name: w for w in CPU_POOL.values() if w.enabled(switches(plan))}
    assert set(on_cpu) <= set(declared), f"not in CPU_POOL: {sorted(set(on_cpu) - set(declared))}"
    assert set(declared) - set(on_cpu) <= UNRENDERED_POOL_ENTRIES, sorted(set(declared) - set(on_cpu))
    # the add-on's interceptor Deployment has no replicas: its chart's own ScaledObject keeps `interceptor.replicas.min`
    add_on = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs.get("chart") == "keda-add-ons-http"]
    scaled_min = {"keda-add-ons-http-interceptor": r.inputs["values"]["interceptor"]["replicas"]["min"] for r in add_on}
    for pod_name, pod in on_cpu.items():
        workload = declared[pod_name]
        assert scaled_min.get(pod_name, pod.replicas) == workload.replicas, pod_name
        assert pod.requests() == (workload.cpu_m, workload.memory_mib), pod_name
        nodes_for = {n.arch for n in cpu_nodes if placement.may_land(pod, n)}
        assert nodes_for <= set(workload.arches), pod_name


def test_grafana_and_kube_state_metrics_ask_what_cpu_pool_declares(dev_plan):
    """Their sub-charts do not render here: their values are checked instead (Grafana's pod is its container and
    its two sidecars, dashboards and datasources, each taking sidecar.resources: grafana 12.11.1)."""
    values = release(dev_plan, "kube-prometheus-stack").inputs["values"]
    grafana = values["grafana"]
    main = placement.Pod("", "", "", {"containers": [{"resources": grafana["resources"]}]}, 1).requests()
    sidecar = placement.Pod("", "", "", {"containers": [{"resources": grafana["sidecar"]["resources"]}]}, 1).requests()
    assert sidecar == (GRAFANA_SIDECAR.cpu_m, GRAFANA_SIDECAR.memory_mib)
    assert (main[0] + 2 * sidecar[0], main[1] + 2 * sidecar[1]) == (CPU_POOL["grafana"].cpu_m,
                                                                     CPU_POOL["grafana"].memory_mib)
    ksm = placement.Pod("", "", "", {"containers": [{"resources": values["kube-state-metrics"]["resources"]}]},
                        1).requests()
    assert ksm == (CPU_POOL["kube-state-metrics"].cpu_m, CPU_POOL["kube-state-metrics"].memory_mib)
    reloader = values["prometheusOperator"]["prometheusConfigReloader"]["resources"]["requests"]
    assert reloader == CONFIG_RELOADER.as_k8s()


# --------------------------------------------------------------------------------------------- destroy


def test_everything_on_a_node_pool_goes_before_it(dev_plan):
    found = {(w.name, p.inputs["metadata"]["name"]) for w, p in checks.pool_workloads(dev_plan)}
    assert found == {
        ("nim-on-eks-dev-monitoring-kube-prometheus-stack", "cpu"),
        ("nim-on-eks-dev-scaling-keda", "cpu"),
        ("nim-on-eks-dev-scaling-http-add-on", "cpu"),
        ("nim-on-eks-dev-nim-llm-llama3-8b-instruct-precache", "cpu"),
        ("nim-on-eks-dev-open-webui-deployment", "cpu"),
        ("nim-on-eks-dev-gateway-envoy-gateway", "cpu"),
        ("nim-on-eks-dev-gateway-ai-gateway-crds", "cpu"),
        ("nim-on-eks-dev-gateway-ai-gateway", "cpu"),
        ("nim-on-eks-dev-load-balancer-controller", "cpu"),
        ("nim-on-eks-dev-monitoring-dcgm-exporter", "gpu"),
        ("nim-on-eks-dev-karpenter-nvidia-device-plugin", "gpu"),
        ("nim-on-eks-dev-nim-llm-llama3-8b-instruct-sts", "gpu"),
    }
    assert checks.destroy_problems(dev_plan) == []
    waves = {r.urn: i for i, wave in enumerate(checks.destroy_waves(dev_plan)) for r in wave}
    pool = dev_plan.one(NODE_POOL, "nim-on-eks-dev-karpenter-cpu-pool")
    node_class = dev_plan.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", "nim-on-eks-dev-karpenter-cpu-class")
    controller = release(dev_plan, "karpenter")
    assert waves[pool.urn] < waves[node_class.urn] < waves[controller.urn]
    for workload in (release(dev_plan, "kube-prometheus-stack"), obj(dev_plan, "kubernetes:apps/v1:Deployment",
                                                                     "open-webui")):
        assert waves[workload.urn] < waves[pool.urn]


@pytest.mark.parametrize("workload", ["kube-prometheus-stack", "open-webui"])
def test_destroy_catches_a_cpu_workload_deleted_after_its_node_pool(dev_plan, workload):
    plan = copy.deepcopy(dev_plan)
    pool = plan.one(NODE_POOL, "nim-on-eks-dev-karpenter-cpu-pool")
    target = release(plan, workload) if workload != "open-webui" else obj(plan, "kubernetes:apps/v1:Deployment",
                                                                          workload)
    for r in plan.resources:  # the object and whatever it waits for (Open WebUI's secret and claim wait too)
        r.dependencies = [d for d in r.dependencies if d != pool.urn]
    found = checks.destroy_problems(plan)
    assert any(p.startswith(f"{target.type.rsplit(':', 1)[-1]} {target.name} runs pods on the nodes of NodePool cpu "
                            "but can be deleted after it") for p in found), found


def test_destroy_catches_a_workload_on_the_gpu_pool_deleted_after_it(dev_plan):
    plan = copy.deepcopy(dev_plan)
    pool = plan.one(NODE_POOL, "nim-on-eks-dev-karpenter-gpu-pool")
    plugin = release(plan, "nvidia-device-plugin")
    plugin.dependencies = [d for d in plugin.dependencies if d != pool.urn]
    assert any(p.startswith(f"Release {plugin.name} runs pods on the nodes of NodePool gpu")
               for p in checks.destroy_problems(plan))
