"""Open WebUI and the GenAI-Perf pod."""

from __future__ import annotations

from components.webui import openai_env
from tests.conftest import GENAI_PERF, OPEN_WEBUI, THREE_MODELS, plan_for

NAME = "nim-on-eks-dev-open-webui"


def deployment(plan, name):
    return plan.one("kubernetes:apps/v1:Deployment", name).inputs


def test_open_webui(dev_plan):
    ns = dev_plan.one("kubernetes:core/v1:Namespace", f"{NAME}-ns")
    assert ns.inputs["metadata"]["name"] == "open-webui"
    d = deployment(dev_plan, f"{NAME}-deployment")
    pod = d["spec"]["template"]["spec"]
    [c] = pod["containers"]
    repo, tag = c["image"].rsplit(":", 1)
    assert repo == "ghcr.io/open-webui/open-webui" and tag.startswith("v0.") and tag not in ("main", "latest")
    env = {e["name"]: e for e in c["env"]}
    # Open WebUI calls every model through the gateway, as a client with a key of its own (kept in its Secret)
    assert env["OPENAI_API_BASE_URLS"]["value"] == "http://nim-gateway.envoy-gateway-system.svc.cluster.local:80/v1"
    assert env["OPENAI_API_KEYS"]["valueFrom"] == {"secretKeyRef": {"name": "open-webui", "key": "OPENAI_API_KEY"}}
    assert env["WEBUI_SECRET_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "open-webui", "key": "WEBUI_SECRET_KEY"}}
    secret = dev_plan.one("kubernetes:core/v1:Secret", f"{NAME}-secret")
    assert secret.inputs["stringData"] == "[secret]"
    assert len(secret.revealed["stringData"]["WEBUI_SECRET_KEY"]) >= 32
    credentials = dev_plan.one("kubernetes:core/v1:Secret", "nim-on-eks-dev-gateway-api-keys")
    assert secret.revealed["stringData"]["OPENAI_API_KEY"] == credentials.revealed["stringData"]["open-webui"]
    assert c["resources"]["requests"] and c["resources"]["limits"]
    assert {"name": "data", "mountPath": "/app/backend/data"} in c["volumeMounts"]
    pvc = dev_plan.one("kubernetes:core/v1:PersistentVolumeClaim", f"{NAME}-data").inputs
    assert pvc["spec"]["storageClassName"] == "gp3" and pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pod["volumes"][0] == {"name": "data", "persistentVolumeClaim": {"claimName": "open-webui-data"}}
    # the rest are emptyDirs for what it writes besides its data (tests/test_pod_security.py)
    assert all("emptyDir" in v for v in pod["volumes"][1:])
    assert d["spec"]["strategy"] == {"type": "Recreate"}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["cpu"]  # Karpenter's CPU nodes: never GPU or core
    assert "tolerations" not in pod
    svc = dev_plan.one("kubernetes:core/v1:Service", f"{NAME}-svc").inputs
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert dev_plan.outputs["open_webui_port_forward"] == "kubectl -n open-webui port-forward svc/open-webui 8080:80"


def test_without_the_gateway_open_webui_calls_each_model_directly():
    plan = plan_for("gateway=false")
    [c] = deployment(plan, f"{NAME}-deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    # the dev model scales to zero: Open WebUI reaches it through the interceptor, like every consumer
    assert env["OPENAI_API_BASE_URLS"] == plan.outputs["nim_models"]["meta/llama3-8b-instruct"]["url"] \
        == "http://nim-llm-llama3-8b-instruct-proxy.nim.svc.cluster.local:8000/v1"
    assert env["OPENAI_API_KEYS"] == "not-needed"
    assert "OPENAI_API_KEY" not in plan.one("kubernetes:core/v1:Secret", f"{NAME}-secret").revealed["stringData"]


def test_every_model_in_config_order():
    plan = plan_for(*THREE_MODELS, "gateway=false")
    [c] = deployment(plan, f"{NAME}-deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    urls = env["OPENAI_API_BASE_URLS"].split(";")
    assert urls == [f"http://{n}.nim.svc.cluster.local:8000/v1" for n in (
        "nim-llm-llama-3-1-8b-instruct", "nim-llm-llama-3-1-70b-instruct", "nim-llm-llama-3-2-1b-instruct")]
    assert len(env["OPENAI_API_KEYS"].split(";")) == 3


def test_openai_env():
    assert openai_env(["a", "b"]) == {"OPENAI_API_BASE_URLS": "a;b", "OPENAI_API_KEYS": "not-needed;not-needed"}


def test_switches(dev_plan):
    assert not dev_plan.of_type(GENAI_PERF)  # off by default
    plan = plan_for("open_webui=false")
    assert not plan.of_type(OPEN_WEBUI)
    assert "open_webui_port_forward" not in plan.outputs


def test_genai_perf():
    plan = plan_for("genai_perf=true")
    d = deployment(plan, "nim-on-eks-dev-genai-perf-deployment")
    assert d["metadata"]["namespace"] == "nim"
    pod = d["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert c["image"].startswith("nvcr.io/nvidia/tritonserver:") and c["image"].endswith("-py3-sdk")
    assert c["command"] == ["sleep", "infinity"]  # stays up for interactive runs
    assert "nvidia.com/gpu" not in str(c["resources"])  # the OpenAI endpoint needs no GPU on the client side
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["cpu"]
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}  # its image has no arm64 build (as checked)
    assert plan.outputs["genai_perf_exec"] == "kubectl -n nim exec -it deploy/genai-perf -- bash"
