"""NimModel: secrets, cache, StatefulSet, Services, ServiceMonitor, PDB, and scheduling that fits the GPU (its scaling:
tests/test_scaling.py)."""

from __future__ import annotations

import base64
import json

import pytest

from planning.gpus import GPU_TYPES
from components.nim import docker_config, startup_minutes
from tests.conftest import CATALOG, THREE_MODELS, obj, parse, plan_for, problems

DEV = "nim-llm-llama3-8b-instruct"


def sts(plan, name=DEV):
    return obj(plan, "kubernetes:apps/v1:StatefulSet", name).inputs


def container(plan, name=DEV):
    return sts(plan, name)["spec"]["template"]["spec"]["containers"][0]


def test_namespace_and_secrets(dev_plan):
    ns = obj(dev_plan, "kubernetes:core/v1:Namespace", "nim")
    pull = obj(dev_plan, "kubernetes:core/v1:Secret", "ngc-secret")
    assert pull.inputs["type"] == "kubernetes.io/dockerconfigjson"
    assert pull.inputs["stringData"] == "[secret]"  # secret in the plan, state and outputs
    config = json.loads(pull.revealed["stringData"][".dockerconfigjson"])["auths"]["nvcr.io"]
    assert config["username"] == "$oauthtoken"
    assert base64.b64decode(config["auth"]).decode() == f"$oauthtoken:{config['password']}"
    api = obj(dev_plan, "kubernetes:core/v1:Secret", "ngc-api")
    assert api.inputs["type"] == "Opaque" and api.inputs["stringData"] == "[secret]"
    assert set(api.revealed["stringData"]) == {"NGC_API_KEY"}
    assert dev_plan.depends_on(api, ns)


def test_docker_config():
    auths = json.loads(docker_config("nvapi-x"))["auths"]
    assert auths == {"nvcr.io": {"username": "$oauthtoken", "password": "nvapi-x",
                                 "auth": base64.b64encode(b"$oauthtoken:nvapi-x").decode()}}


def test_ngc_key_never_appears_in_clear(tmp_path):
    key = "nvapi-THIS-MUST-NOT-LEAK-0123456789"
    from tools import plan as plan_cli
    target = tmp_path / "plan.json"
    assert plan_cli.main(["--set", f"ngc_api_key={key}", "--set", THREE_MODELS[2], "--set", THREE_MODELS[0],
                          "--set", THREE_MODELS[1],
                          "--json", str(target)]) == 0
    text = target.read_text()
    assert key not in text and base64.b64encode(key.encode()).decode()[:20] not in text
    assert "[secret]" in text


def test_cache_volume(dev_plan):
    pvc = obj(dev_plan, "kubernetes:core/v1:PersistentVolumeClaim", f"{DEV}-cache").inputs
    assert pvc["metadata"]["namespace"] == "nim"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["storageClassName"] == "efs"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "40Gi"
    volumes = sts(dev_plan)["spec"]["template"]["spec"]["volumes"]
    assert {"name": "model-store", "persistentVolumeClaim": {"claimName": f"{DEV}-cache"}} in volumes
    assert "volumeClaimTemplates" not in sts(dev_plan)["spec"]  # one cache shared by every replica
    assert sts(dev_plan)["spec"]["podManagementPolicy"] == "OrderedReady"  # one downloader at a time


def test_statefulset_server(dev_plan):
    spec = sts(dev_plan)["spec"]
    c = container(dev_plan)
    entry = CATALOG.models["meta/llama3-8b-instruct"]
    assert c["image"] == f"nvcr.io/nim/meta/llama3-8b-instruct:{entry.tag}"
    env = {e["name"]: e for e in c["env"]}
    assert env["NGC_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "ngc-api", "key": "NGC_API_KEY"}}
    assert env["NIM_CACHE_PATH"]["value"] == "/model-store"
    assert {"name": "model-store", "mountPath": "/model-store"} in c["volumeMounts"]
    assert env["NIM_SERVER_PORT"]["value"] == "8000"
    assert env["NIM_SERVED_MODEL_NAME"]["value"] == "meta/llama3-8b-instruct"
    assert env["NIM_JSONL_LOGGING"]["value"] == "1"
    assert c["ports"] == [{"name": "http-openai", "containerPort": 8000, "protocol": "TCP"}]
    # host memory limited at twice the request plus the 16 GiB of /dev/shm, whose files count against it
    assert c["resources"] == {"requests": {"cpu": "4", "memory": "26Gi", "nvidia.com/gpu": "1"},
                              "limits": {"memory": "68Gi", "nvidia.com/gpu": "1"}}
    pod = spec["template"]["spec"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in pod["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
    assert pod["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "runAsNonRoot": True,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                    "runAsNonRoot": True, "readOnlyRootFilesystem": False}
    assert pod["imagePullSecrets"] == [{"name": "ngc-secret"}]
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["terminationGracePeriodSeconds"] >= 120
    assert c["lifecycle"]["preStop"] == {"sleep": {"seconds": 15}}
    assert spec["serviceName"] == f"{DEV}-sts"
    assert "replicas" not in spec  # KEDA owns replicas


def test_probes(dev_plan):
    c = container(dev_plan)
    # NIM's endpoints: live once the server runs, ready once the model is loaded (NVIDIA NIM for LLMs docs)
    assert c["livenessProbe"]["httpGet"] == {"path": "/v1/health/live", "port": "http-openai"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/v1/health/ready", "port": "http-openai"}
    startup = c["startupProbe"]
    assert startup["httpGet"] == {"path": "/v1/health/live", "port": "http-openai"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30 * 60  # a first download of a big model
    # a server busy with long generations may miss a check or two: it is restarted only after a minute of failures
    liveness = c["livenessProbe"]
    assert liveness["failureThreshold"] >= 3
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60
    # ... while a replica that stops being ready leaves the Service within half a minute
    readiness = c["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] <= 30
    for probe in (liveness, readiness, startup):
        assert probe["timeoutSeconds"] >= 5  # the default 1 s fails under load


@pytest.mark.parametrize("cache, minutes", [(10, 30), (150, 30), (300, 60)])
def test_startup_grows_with_model_size(cache, minutes):
    assert startup_minutes(cache) == minutes


def test_services(dev_plan):
    svc = obj(dev_plan, "kubernetes:core/v1:Service", DEV).inputs
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http-openai", "port": 8000, "targetPort": "http-openai", "protocol": "TCP"}]
    headless = obj(dev_plan, "kubernetes:core/v1:Service", f"{DEV}-sts").inputs
    assert headless["spec"]["clusterIP"] == "None"
    pod_labels = sts(dev_plan)["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"] == headless["spec"]["selector"] == pod_labels


def test_service_monitor_and_pdb(dev_plan):
    sm = obj(dev_plan, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", DEV).inputs
    assert sm["spec"]["endpoints"] == [{"port": "http-openai", "path": "/v1/metrics", "interval": "30s"}]
    svc = obj(dev_plan, "kubernetes:core/v1:Service", DEV).inputs
    headless = obj(dev_plan, "kubernetes:core/v1:Service", f"{DEV}-sts").inputs
    selector = sm["spec"]["selector"]["matchLabels"]
    assert selector.items() <= svc["metadata"]["labels"].items()  # scrapes the ClusterIP Service ...
    assert not selector.items() <= headless["metadata"]["labels"].items()  # ... and not each pod twice
    pdb = obj(dev_plan, "kubernetes:policy/v1:PodDisruptionBudget", DEV).inputs["spec"]
    assert pdb["maxUnavailable"] == 1 and pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    # the budget protects exactly this model's pods: a selector the pods do not match protects nothing
    statefulset = sts(dev_plan)["spec"]
    assert pdb["selector"] == statefulset["selector"]
    assert pdb["selector"]["matchLabels"].items() <= statefulset["template"]["metadata"]["labels"].items()


def test_outputs(dev_plan):
    # the dev model scales to zero: its URL goes through the interceptor (tests/test_scaling.py)
    assert dev_plan.outputs["nim_models"] == {"meta/llama3-8b-instruct": {
        "url": "http://nim-llm-llama3-8b-instruct-proxy.nim.svc.cluster.local:8000/v1",
        "port_forward": "kubectl -n nim port-forward svc/nim-llm-llama3-8b-instruct 8000:8000",
        "kubernetes_name": "nim-llm-llama3-8b-instruct"}}


def test_order(dev_plan):
    statefulset = obj(dev_plan, "kubernetes:apps/v1:StatefulSet", DEV)
    for kind, name in [("kubernetes:karpenter.sh/v1:NodePool", "nim-on-eks-dev-karpenter-gpu-pool"),
                       ("kubernetes:storage.k8s.io/v1:StorageClass", "nim-on-eks-dev-storage-efs"),
                       ("kubernetes:helm.sh/v3:Release", "nim-on-eks-dev-karpenter-nvidia-device-plugin"),
                       ("kubernetes:core/v1:Secret", "nim-on-eks-dev-nim-api-key")]:
        assert dev_plan.depends_on(statefulset, dev_plan.one(kind, name)), name
    pvc = obj(dev_plan, "kubernetes:core/v1:PersistentVolumeClaim", f"{DEV}-cache")
    assert dev_plan.depends_on(pvc, dev_plan.one("aws:efs/fileSystem:FileSystem"))
    assert dev_plan.depends_on(statefulset, pvc)  # pods never wait on a claim that does not exist yet


def terms(plan, name):
    return sts(plan, name)["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]


def expression(term, key):
    [e] = [e for e in term["matchExpressions"] if e["key"] == key]
    return e


def allowed_gpu_names(model: str, gpus: int, families: set[str]) -> set[tuple[str, str]]:
    return {(GPU_TYPES[t].label, str(GPU_TYPES[t].memory_mib - 1))
            for t, need in CATALOG.models[model].min_gpus.items()
            if need <= gpus and set(GPU_TYPES[t].families) & families}


def test_dev_affinity_matches_the_catalog(dev_plan):
    found = {(expression(t, "karpenter.k8s.aws/instance-gpu-name")["values"][0],
              expression(t, "karpenter.k8s.aws/instance-gpu-memory")["values"][0]) for t in terms(dev_plan, DEV)}
    assert found == allowed_gpu_names("meta/llama3-8b-instruct", 1, {"g5", "g6", "g6e"}) == {
        ("a10g", "22887"), ("l4", "22887"), ("l40s", "45775")}
    for t in terms(dev_plan, DEV):
        assert expression(t, "karpenter.k8s.aws/instance-gpu-count") == {
            "key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]}
        assert expression(t, "karpenter.sh/capacity-type")["values"] == ["spot", "on-demand"]


def test_three_models():
    plan = plan_for(*THREE_MODELS)
    assert plan.error is None, plan.error
    families = {"g5", "g6", "g6e", "p4de", "p5"}
    cases = [("meta/llama-3.1-8b-instruct", "nim-llm-llama-3-1-8b-instruct", 1),
             ("meta/llama-3.1-70b-instruct", "nim-llm-llama-3-1-70b-instruct", 4),
             ("meta/llama-3.2-1b-instruct", "nim-llm-llama-3-2-1b-instruct", 1)]
    for model, name, gpus in cases:
        found = {(expression(t, "karpenter.k8s.aws/instance-gpu-name")["values"][0],
                  expression(t, "karpenter.k8s.aws/instance-gpu-memory")["values"][0]) for t in terms(plan, name)}
        assert found == allowed_gpu_names(model, gpus, families), model
        assert container(plan, name)["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)
        for t in terms(plan, name):
            assert expression(t, "karpenter.k8s.aws/instance-gpu-count")["values"] == [str(gpus - 1)]
    seventy = {e["values"][0] for t in terms(plan, "nim-llm-llama-3-1-70b-instruct")
               for e in t["matchExpressions"] if e["key"] == "karpenter.k8s.aws/instance-gpu-name"}
    assert seventy == {"l40s", "a100", "h100"} and "a10g" not in seventy
    a100 = [t for t in terms(plan, "nim-llm-llama-3-1-70b-instruct")
            if expression(t, "karpenter.k8s.aws/instance-gpu-name")["values"] == ["a100"]][0]
    assert expression(a100, "karpenter.k8s.aws/instance-gpu-memory")["values"] == ["81919"]  # the 80 GB A100 only
    small = terms(plan, "nim-llm-llama-3-2-1b-instruct")
    assert all(expression(t, "karpenter.sh/capacity-type")["values"] == ["on-demand"] for t in small)
    env = {e["name"]: e.get("value") for e in container(plan, "nim-llm-llama-3-2-1b-instruct")["env"]}
    assert env["NIM_MAX_MODEL_LEN"] == "4096"
    scaled = obj(plan, "kubernetes:keda.sh/v1alpha1:ScaledObject", "nim-llm-llama-3-1-70b-instruct")
    assert scaled.inputs["spec"]["maxReplicaCount"] == 2
    names = [r.inputs["metadata"]["name"] for r in plan.of_type("kubernetes:apps/v1:StatefulSet")]
    assert len(names) == len(set(names)) == 3
    assert [r.inputs["metadata"]["name"] for r in plan.of_type("kubernetes:core/v1:Namespace")].count("nim") == 1
    assert len(plan.outputs["nim_models"]) == 3


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"nim_models": '[{"name": "meta/llama-3.1-70b-instruct", "gpus": 4}]', "gpu_instance_families": '["g5","g6"]'},
         "nim_models[0]: meta/llama-3.1-70b-instruct fits no instance with 4 GPUs in gpu_instance_families (g5, g6, "
         "at most 8 GPUs per node); it needs 8 x a10g, 4 x l40s, 8 x a100, 4 x a100-80gb, 4 x h100, 2 x h200, and 16 "
         "vCPU and 150 GiB of host memory per replica; add g6e, p4de, p5 or p5en to gpu_instance_families or set "
         "gpus to 8"),
        ({"nim_models": '[{"name": "meta/llama-3.1-70b-instruct", "gpus": 4}]', "gpu_instance_families": '["g6e"]',
          "gpu_capacity_types": '["spot"]'}, None),
        ({"nim_models": '[{"name": "meta/llama3-8b-instruct", "gpus": 12}]'},
         "nim_models[0]: meta/llama3-8b-instruct asks for 12 GPUs per replica, more than any instance in "
         "gpu_instance_families (g5, g6, g6e, at most 8 GPUs per node) has; allowed: gpus from 1 to 8"),
        ({"nim_models": '[{"name": "meta/llama3-8b-instruct", "capacity_types": ["on-demand"]}]',
          "gpu_capacity_types": '["spot"]'},
         "nim_models[0].capacity_types: '[\"on-demand\"]' is not allowed by gpu_capacity_types '[\"spot\"]'"),
        ({"nim_models": '[{"name": "meta/llama3-8b-instruct", "env": {"NGC_API_KEY": "x"}}]'},
         "nim_models[0].env: '{\"NGC_API_KEY\": \"x\"}' is not valid; NGC_API_KEY is set by nim-on-eks"),
        ({"nim_models": '[{"name": "meta/llama3-8b-instruct", "env": {"1BAD": "x"}}]'}, "nim_models[0].env"),
        ({"nim_namespace": "NIM"}, "nim_namespace: 'NIM' is not valid"),
    ],
)
def test_models_that_cannot_run_fail_before_anything_is_created(overrides, expected):
    if expected is None:  # the 70B fits 4 x L40S on g6e
        assert parse(**overrides).models[0].gpu_types == ("l40s",)
        return
    found = problems(**overrides)
    assert any(expected in p for p in found), found


def test_namespace_pod_security(dev_plan):
    labels = obj(dev_plan, "kubernetes:core/v1:Namespace", "nim").inputs["metadata"]["labels"]
    # AIPerf runs non-root too, so the namespace enforces restricted (tests/test_pod_security.py checks the pods)
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    # what "restricted" asks of the NIM pod
    pod = sts(dev_plan)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False  # NIM never calls the Kubernetes API: no token to steal
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod["containers"]:
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {next(iter(set(v) - {"name"})) for v in pod["volumes"]} <= {"persistentVolumeClaim", "emptyDir"}


def test_nim_root_stays_writable_as_recorded(dev_plan):
    """NIM's server and its pre-cache Job keep a writable root, as planning/security.py NIM_READ_ONLY_ROOT records
    (no NVIDIA source lists what NIM writes besides the cache and /dev/shm), and mount only what NVIDIA's own
    renderings mount; flipping one without the other, or without emptyDirs for what NIM writes, fails here."""
    from pathlib import Path
    from planning.security import NIM_READ_ONLY_ROOT
    assert NIM_READ_ONLY_ROOT is False
    server = container(dev_plan)
    job = obj(dev_plan, "kubernetes:batch/v1:Job", f"{DEV}-precache").inputs["spec"]["template"]["spec"]
    [precache] = job["containers"]
    for c in (server, precache):
        assert c["securityContext"].get("readOnlyRootFilesystem", False) is NIM_READ_ONLY_ROOT, c["name"]
    assert {m["mountPath"] for m in server["volumeMounts"]} == {"/model-store", "/dev/shm"}
    assert {m["mountPath"] for m in precache["volumeMounts"]} == {"/model-store"}
    # the README says what was checked, and where
    security = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text().split("## Security", 1)[1]
    for source in ("k8s-nim-operator", "f63f74d7", "helm/nim-llm", "be34031c", "OUTLINES_CACHE_DIR", "#635"):
        assert source in security.split("### Network policies")[0], source
