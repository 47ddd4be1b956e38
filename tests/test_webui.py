"""Open WebUI and the AIPerf pod."""

from __future__ import annotations

import json
import re

from components.webui import openai_env
import shlex

import pytest

from planning import aiperf, versions
from tests.conftest import AIPERF, CATALOG, OPEN_WEBUI, THREE_MODELS, plan_for

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
    assert not dev_plan.of_type(AIPERF)  # off by default
    assert not [k for k in dev_plan.outputs if k.startswith("aiperf")]
    plan = plan_for("open_webui=false")
    assert not plan.of_type(OPEN_WEBUI)
    assert "open_webui_port_forward" not in plan.outputs


AIPERF_NAME = "nim-on-eks-dev-aiperf"
# the same stack as it was created with GenAI-Perf: its component and Deployment, by the URNs it recorded
OLD_COMPONENT = "urn:pulumi:dev::nim-on-eks::nim-on-eks:index:GenAiPerf::nim-on-eks-dev-genai-perf"
OLD_DEPLOYMENT = ("urn:pulumi:dev::nim-on-eks::nim-on-eks:index:GenAiPerf$kubernetes:apps/v1:Deployment::"
                  "nim-on-eks-dev-genai-perf-deployment")


def test_aiperf():
    plan = plan_for("aiperf=true")
    d = deployment(plan, f"{AIPERF_NAME}-deployment")
    assert (d["metadata"]["name"], d["metadata"]["namespace"]) == ("aiperf", "nim")  # beside the models
    pod = d["spec"]["template"]["spec"]
    [c], [install] = pod["containers"], pod["initContainers"]
    assert c["image"] == install["image"] == versions.AIPERF_IMAGE == "docker.io/library/python:3.12.12-slim-bookworm"
    assert c["command"] == ["sleep", "infinity"]  # stays up for interactive runs
    # the pinned release, wheels only, into the venv on the emptyDir; the main container finds it first on PATH
    script = install["command"][-1]
    assert (f"pip install --only-binary=:all: --disable-pip-version-check -c /constraints/constraints.txt "
            f"aiperf=={versions.AIPERF_VERSION}") in script
    # every dependency pinned: the constraints file (from a ConfigMap) pins aiperf itself at the same version, and a
    # changed file rolls the pod (its digest is in the template)
    cm = plan.one("kubernetes:core/v1:ConfigMap", f"{AIPERF_NAME}-constraints").inputs
    pins = [l for l in cm["data"]["constraints.txt"].splitlines() if l and not l.startswith("#")]
    assert f"aiperf=={versions.AIPERF_VERSION}" in pins and all(re.fullmatch(r"[a-z0-9-]+==[^=\s]+", l) for l in pins)
    assert len(pins) > 100
    assert {"name": "constraints", "configMap": {"name": cm["metadata"]["name"]}} in pod["volumes"]
    assert d["spec"]["template"]["metadata"]["annotations"]["nim-on-eks/aiperf-constraints"] == \
        aiperf.constraints_digest()
    # Karpenter does not consolidate its node away mid-run (results on the emptyDir, the install, would go with it)
    assert d["spec"]["template"]["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
    assert script.startswith("python -m venv /work/venv ")
    assert {"name": "PATH", "value": "/work/venv/bin:/usr/local/bin:/usr/bin:/bin"} in c["env"]
    assert {v["name"]: v["emptyDir"]["sizeLimit"] for v in pod["volumes"] if "emptyDir" in v} == {"work": "10Gi",
                                                                                                  "tmp": "2Gi"}
    assert "nvidia.com/gpu" not in str(c["resources"])  # the OpenAI endpoint needs no GPU on the client side
    assert "imagePullSecrets" not in pod  # Docker Hub's official image: no NGC secret
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["cpu"]
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}  # crick has no arm64 wheel
    assert versions.IMAGE_ARCHES[versions.AIPERF_IMAGE][0] == versions.AIPERF_ARCHES == ("amd64",)
    assert plan.outputs["aiperf_exec"] == "kubectl -n nim exec -it deploy/aiperf -- bash"
    # a Hugging Face token (gated tokenizers) only from an optional Secret, never on a command line
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN",
                                                               "optional": True}}} in c["env"]
    assert "HF_TOKEN=" not in json.dumps(plan.outputs)
    # a new x86 node and the install before the pod is ready: Pulumi waits 20 minutes, not its default 10
    assert plan.one("kubernetes:apps/v1:Deployment", f"{AIPERF_NAME}-deployment").options["custom_timeouts"] == {
        "create": "20m", "update": "20m"}


def test_aiperf_keeps_the_urns_of_genai_perf():
    """A stack made with GenAI-Perf keeps the component and its Deployment (the pod is replaced: new name, image)."""
    plan = plan_for("aiperf=true")
    component = plan.one(AIPERF, AIPERF_NAME)
    assert OLD_COMPONENT in component.aliases
    assert OLD_DEPLOYMENT in plan.one("kubernetes:apps/v1:Deployment", f"{AIPERF_NAME}-deployment").aliases


def test_genai_perf_is_an_alias_that_warns():
    old = plan_for("genai_perf=true")
    assert old.one(AIPERF, AIPERF_NAME) and "aiperf_commands" in old.outputs
    [warning] = [w for w in old.warnings if "genai_perf" in w]
    assert "deprecated" in warning and "pulumi config set aiperf true" in warning
    assert "pulumi config rm genai_perf" in warning
    assert not plan_for("genai_perf=false").of_type(AIPERF)
    assert not any("genai_perf" in w for w in plan_for("aiperf=true").warnings)


def test_genai_perf_and_aiperf_together_are_an_error():
    plan = plan_for("genai_perf=true", "aiperf=true")
    assert plan.error and "genai_perf: set together with aiperf" in plan.error
    assert "`pulumi config rm genai_perf`" in plan.error


def words(command: str) -> dict[str, list[str]]:
    """The flags of a command and their values (a flag given twice: both)."""
    args, out = shlex.split(command), {}
    for i, a in enumerate(args):
        if a.startswith("--"):
            value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else ""
            out.setdefault(a, []).append(value)
    return out


def test_aiperf_commands_run_the_blueprint_test_per_model():
    plan = plan_for(*THREE_MODELS, "aiperf=true")
    commands = plan.outputs["aiperf_commands"]
    assert list(commands) == ["meta/llama-3.1-8b-instruct", "meta/llama-3.1-70b-instruct",
                              "meta/llama-3.2-1b-instruct"]
    for served, command in commands.items():
        assert command.startswith("kubectl -n nim exec deploy/aiperf -- aiperf profile ")
        flags = words(command)
        k8s_name = "nim-llm-" + served.split("/")[1].replace(".", "-")
        assert flags["--model"] == [served]
        # the model's own Service (these run always warm, with monitoring): AIPerf adds /v1/chat/completions
        assert flags["--url"] == [f"http://{k8s_name}.nim.svc.cluster.local:8000"]
        assert flags["--endpoint-type"] == ["chat"] and "--streaming" in flags
        # max_tokens, not max_completion_tokens, which 2024 NIM images (vLLM before PR #9837) answer with 400
        assert "--use-legacy-max-tokens" in flags
        # the original blueprint's test: 200 tokens in, 100 out, concurrency 10, 100 prompts (and requests)
        assert flags["--synthetic-input-tokens-mean"] == ["200"] and flags["--synthetic-input-tokens-stddev"] == ["0"]
        assert flags["--output-tokens-mean"] == ["100"] and flags["--output-tokens-stddev"] == ["0"]
        assert flags["--extra-inputs"] == ["min_tokens:100", "ignore_eos:true"]
        assert flags["--concurrency"] == ["10"] and flags["--request-count"] == ["100"]
        assert flags["--num-prompts"] == ["100"]
        assert flags["--warmup-request-count"] == ["10"]  # before the clock starts, left out of the figures
        # the Llama 3.1 and 3.2 family's tokenizer, a public copy
        assert flags["--tokenizer"] == ["NousResearch/Meta-Llama-3.1-8B-Instruct"]
        # results where the copy command takes them from; no PNG plots in the pod (kaleido needs Chrome)
        assert flags["--artifact-dir"] == [f"/work/artifacts/{k8s_name}/blueprint"] and "--auto-plot" not in flags
    sweeps = plan.outputs["aiperf_sweep_commands"]
    assert list(sweeps) == list(commands)
    for served, command in sweeps.items():
        flags = words(command)
        assert flags["--model"] == [served] and flags["--url"] == words(commands[served])["--url"]
        assert flags["--concurrency"] == ["1,2,4,8,16,32,64"] and flags["--artifact-dir"][0].endswith("/sweep")
    assert plan.outputs["aiperf_copy_results"] == (
        "kubectl -n nim cp $(kubectl -n nim get pod -l app.kubernetes.io/name=aiperf "
        "-o jsonpath='{.items[0].metadata.name}'):/work/artifacts ./aiperf-artifacts")


def test_plots_are_served_by_the_dashboard():
    command = aiperf.dashboard_command("nim", "/work/artifacts/m/sweep")
    assert command == ("kubectl -n nim exec deploy/aiperf -- aiperf plot --dashboard --host 127.0.0.1 --port 8050 "
                       "/work/artifacts/m/sweep")


def test_a_model_at_zero_is_measured_through_the_interceptor():
    plan = plan_for('nim_models=[{"name": "meta/llama3-8b-instruct", "min_replicas": 0}]', "aiperf=true")
    [command] = plan.outputs["aiperf_commands"].values()
    assert words(command)["--url"] == ["http://nim-llm-llama3-8b-instruct-proxy.nim.svc.cluster.local:8000"]


@pytest.mark.parametrize("model, tokenizer", [
    ("meta/llama3-8b-instruct", "NousResearch/Meta-Llama-3-8B-Instruct"),
    ("meta/llama-3.1-8b-instruct", "NousResearch/Meta-Llama-3.1-8B-Instruct"),
    ("meta/llama-3.1-70b-instruct", "NousResearch/Meta-Llama-3.1-8B-Instruct"),
    ("meta/llama-3.2-1b-instruct", "NousResearch/Meta-Llama-3.1-8B-Instruct"),
    ("meta/llama-3.2-3b-instruct", "NousResearch/Meta-Llama-3.1-8B-Instruct"),
    ("mistralai/mixtral-8x7b-instruct-v01", "mistralai/Mixtral-8x7B-Instruct-v0.1"),
])
def test_each_model_family_has_its_tokenizer(model, tokenizer):
    assert CATALOG.models[model].tokenizer == tokenizer
    command = aiperf.blueprint_command("nim", CATALOG.models[model].served_model_name, "http://h:8000",
                                       CATALOG.models[model].tokenizer, "k")
    assert words(command)["--tokenizer"] == [tokenizer]


def test_sweep_command():
    command = aiperf.sweep_command("nim", "meta/llama3-8b-instruct", "http://h:8000",
                                   "NousResearch/Meta-Llama-3-8B-Instruct", "nim-llm-llama3-8b-instruct")
    flags = words(command)
    # one run per level (each in its own directory under sweep/), past the default target of 25 in flight
    assert flags["--concurrency"] == ["1,2,4,8,16,32,64"] and flags["--request-count"] == ["200"]
    assert flags["--synthetic-input-tokens-mean"] == ["200"] and flags["--output-tokens-mean"] == ["100"]
    assert flags["--artifact-dir"] == ["/work/artifacts/nim-llm-llama3-8b-instruct/sweep"]
