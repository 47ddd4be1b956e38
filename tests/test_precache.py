"""Pre-caching a model's weights on a CPU node (issue 13): the profile selection (planning/nim_profiles.py), the
program the Job runs (the same file), the Job (components/precache.py) and how the StatefulSet waits for it.

The manifest samples are shaped like NIM's real ones: v1 as in NVIDIA/k8s-nim-operator @ f63f74d7
internal/nimparser/v1/testdata (a map of profile id -> model, release, tags, container_url, and a workspace with
NIM's `!workspace` / `!name` YAML tags) with tag values seen in real manifests (gpu A100 with gpu_device 20b2:10de,
A10G, L40S, H100 with 2330:10de); v2 as in internal/nimparser/v2/testdata (`schema_version`, `profiles: [...]`).
The ids are made up.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from components import precache as precache_component
from planning import nim_profiles as np_
from planning.catalog import CatalogError, parse_catalog
from planning.gpus import GPU_TYPES
from planning.workloads import (PRECACHE_DOWNLOAD_MIB_S, PRECACHE_JOB, PRECACHE_MEMORY_LIMIT_MIB,
                                precache_download_minutes, precache_timeout_minutes)
from tests.conftest import CATALOG, ROOT, THREE_MODELS, obj, parse, plan_for, problems

DEV = "nim-llm-llama3-8b-instruct"
JOB = "kubernetes:batch/v1:Job"


def profile(engine: str, precision: str, tp: int, gpu: str = "", device: str = "", kind: str = "throughput",
            lora: bool = False) -> str:
    """One v1 manifest entry (YAML text), its id made from what it is."""
    pid = "-".join(p for p in (engine, gpu.lower(), precision, f"tp{tp}", kind if gpu else "", "lora" if lora else "")
                   if p)
    tags = {"feat_lora": "'true'" if lora else "'false'", "llm_engine": engine, "pp": "'1'",
            "precision": precision, "tp": f"'{tp}'"}
    if gpu:
        tags.update(gpu=gpu, profile=kind)
    if device:
        tags["gpu_device"] = f"{device}:10de"
    lines = "\n".join(f"    {k}: {v}" for k, v in sorted(tags.items()))
    return (f"{pid}:\n  model: meta/llama3-8b-instruct\n  release: '1.0.0'\n  tags:\n{lines}\n"
            f"  container_url: nvcr.io/nim/meta/llama3-8b-instruct:1.0.0\n"
            f"  workspace: !workspace\n    components:\n    - dst: engine\n      src:\n        files:\n"
            f"        - !name 'config.json'\n        - !name 'checksums.blake3'\n")


TRT = "tensorrt_llm"
FULL = "".join([
    profile(TRT, "fp8", 1, "H100", "2330"),
    profile(TRT, "bf16", 1, "H100", "2330"),
    profile(TRT, "fp8", 2, "H100", "2330", kind="latency"),
    profile(TRT, "fp8", 1, "L40S"),
    profile(TRT, "bf16", 2, "L40S", kind="latency"),
    profile(TRT, "bf16", 2, "A10G", "2237"),
    profile(TRT, "bf16", 4, "A10G", "2237", kind="latency"),
    profile(TRT, "bf16", 1, "A100", "20b2"),
    profile("vllm", "bf16", 1),
    profile("vllm", "bf16", 2),
    profile("vllm", "bf16", 4),
    profile("vllm", "bf16", 1, lora=True),
])


def select(manifest: str, gpu_types: list[str], gpus: int, lora: bool = False) -> dict[str, list[str]]:
    return np_.select_profiles(np_.load_manifest(manifest), gpu_types, gpus, lora=lora)


# ------------------------------------------------------------------------------------------------ selection


@pytest.mark.parametrize("gpu_types, gpus, expected", [
    # one GPU type: its TRT-LLM profile for that many GPUs, lower precision first
    (["h100"], 1, {"h100": ["tensorrt_llm-h100-fp8-tp1-throughput"]}),
    (["l40s"], 1, {"l40s": ["tensorrt_llm-l40s-fp8-tp1-throughput"]}),
    # several GPU types with distinct TRT-LLM profiles: each gets its own
    (["h100", "l40s"], 1, {"h100": ["tensorrt_llm-h100-fp8-tp1-throughput"],
                           "l40s": ["tensorrt_llm-l40s-fp8-tp1-throughput"]}),
    # a GPU type no profile is made for takes the generic (vLLM) one at the GPU count
    (["l4"], 1, {"l4": ["vllm-bf16-tp1"]}),
    (["h100", "l4"], 1, {"h100": ["tensorrt_llm-h100-fp8-tp1-throughput"], "l4": ["vllm-bf16-tp1"]}),
    # a profile may use fewer GPUs than the replica has; more GPUs used ranks first at the same precision
    (["h100"], 2, {"h100": ["tensorrt_llm-h100-fp8-tp2-latency"]}),
    (["a10g"], 4, {"a10g": ["tensorrt_llm-a10g-bf16-tp4-latency"]}),
    (["a10g"], 1, {"a10g": ["vllm-bf16-tp1"]}),  # A10G's engines need 2 GPUs or more
    # A100 profiles built for 80 GB (gpu_device 20b2) serve p4de, not p4d's 40 GB A100s
    (["a100-80gb"], 1, {"a100-80gb": ["tensorrt_llm-a100-bf16-tp1-throughput"]}),
    (["a100"], 1, {"a100": ["vllm-bf16-tp1"]}),
])
def test_selects_what_nim_would_run_on_each_gpu_type(gpu_types, gpus, expected):
    assert select(FULL, gpu_types, gpus) == expected


def test_only_a_generic_profile_serves_every_gpu_type_with_one_download():
    manifest = profile("vllm", "bf16", 1) + profile("vllm", "bf16", 2)
    selection = select(manifest, ["h100", "l40s", "a10g"], 1)
    assert selection == {t: ["vllm-bf16-tp1"] for t in ("h100", "l40s", "a10g")}
    assert np_.wanted_profiles(selection) == ["vllm-bf16-tp1"]


def test_profiles_nim_could_prefer_either_way_are_all_cached():
    """The docs leave latency vs throughput at the same GPU count and precision open: both are cached."""
    manifest = profile(TRT, "fp8", 1, "H100", kind="throughput") + profile(TRT, "fp8", 1, "H100", kind="latency")
    assert select(manifest, ["h100"], 1) == {"h100": ["tensorrt_llm-h100-fp8-tp1-latency",
                                                      "tensorrt_llm-h100-fp8-tp1-throughput"]}


def test_lora_profiles_only_with_lora():
    assert select(FULL, ["l4"], 1, lora=True) == {"l4": ["vllm-bf16-tp1-lora"]}
    assert "vllm-bf16-tp1-lora" not in np_.wanted_profiles(select(FULL, list(GPU_TYPES), 8))


def test_tp_mismatch_is_a_clear_failure():
    manifest = profile(TRT, "bf16", 2, "A10G") + profile("vllm", "bf16", 2)
    with pytest.raises(np_.NoProfile) as err:
        select(manifest, ["a10g", "l4"], 1)
    message = str(err.value)
    assert message.startswith("no profile of this NIM image runs on a10g, l4 with 1 GPU without LoRA")
    assert "tensorrt_llm A10G bf16 2 GPUs throughput" in message and "vllm any GPU bf16 2 GPUs" in message
    assert "gpus" in message and "NIM_MODEL_PROFILE" in message and "precache to false" in message


def test_nothing_for_a_gpu_type_names_it():
    manifest = profile(TRT, "fp8", 1, "H100")
    with pytest.raises(np_.NoProfile, match="runs on l40s with 1 GPU without LoRA"):
        select(manifest, ["h100", "l40s"], 1)


def test_v2_manifest_and_unquoted_values():
    manifest = textwrap.dedent("""\
        schema_version: 2.0.0
        profile_selection_criteria: default
        profiles:
          - id: trt-l40s
            tags: {llm_engine: tensorrt_llm, precision: fp16, profile: throughput, tp: 1, gpu: L40S, feat_lora: false}
            workspace: {files: {engine: {uri: "ngc://org/model/engine.bin"}}}
          - id: vllm-any
            tags: {llm_engine: vllm, precision: fp16, tp: 1}
            workspace: {files: {weights: {uri: "ngc://org/model/weights.bin"}}}
        """)
    assert select(manifest, ["l40s", "t4"], 1) == {"l40s": ["trt-l40s"], "t4": ["vllm-any"]}


@pytest.mark.parametrize("text, problem", [
    ("[1, 2]", "neither a map of profile ids"),
    ("profiles: []", "lists no profile"),
    ("a: [unclosed", "not valid YAML"),
])
def test_bad_manifests_say_so(text, problem):
    with pytest.raises(np_.ManifestError, match=problem):
        np_.load_manifest(text)


def test_every_gpu_type_has_its_nim_tag():
    assert set(np_.GPU_TAGS) == set(GPU_TYPES)
    assert set(np_.OTHER_SIZE_DEVICES) <= set(GPU_TYPES)


# ------------------------------------------------------------------------------------- the Job's program


def test_precache_skips_what_is_marked_and_marks_only_what_succeeded(tmp_path):
    got = []

    def download(pid):
        got.append(pid)
        if pid == "bad":
            raise SystemExit("failed")

    assert np_.precache(tmp_path, ["a", "b"], download, log=lambda _: None) == ["a", "b"]
    with pytest.raises(SystemExit):
        np_.precache(tmp_path, ["a", "bad", "c"], download, log=lambda _: None)
    assert not (tmp_path / np_.MARKER_DIR / "bad").exists()
    # a re-run (say, a new image tag replaced the Job) downloads only what is missing
    got.clear()
    assert np_.precache(tmp_path, ["a", "b", "bad", "c"], lambda pid: got.append(pid), log=lambda _: None) == [
        "bad", "c"]
    assert got == ["bad", "c"]
    assert np_.marker_name("tensorrt_llm-l40s/fp8 tp1") == "tensorrt_llm-l40s_fp8_tp1"


def fake_nim(tmp_path: Path) -> Path:
    """A NIM-like bin directory: a download-to-cache that records its arguments, and python3 beside it."""
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    tool = bin_dir / "download-to-cache"
    tool.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'calls'}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    (bin_dir / "python3").symlink_to(sys.executable)
    return bin_dir


def nim_with_manifest(tmp_path: Path, monkeypatch, download: str | None = None, before: tuple[str, ...] = ()) -> Path:
    """fake_nim on PATH (its download-to-cache replaced by the `download` script when given) and the FULL manifest
    where the program looks, after the paths `before`; the manifest's path."""
    bin_dir = fake_nim(tmp_path)
    if download is not None:
        (bin_dir / "download-to-cache").write_text(download)
    manifest = tmp_path / "model_manifest.yaml"
    manifest.write_text(FULL)
    monkeypatch.setattr(np_, "MANIFEST_PATHS", (*before, str(manifest)))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return manifest


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_main_selects_from_the_manifest_and_downloads_once(tmp_path, monkeypatch, capsys):
    manifest = nim_with_manifest(tmp_path, monkeypatch, before=("/nonexistent/model_manifest.yaml",))
    env = {"NIM_CACHE_PATH": str(tmp_path / "cache"), "NIM_ON_EKS_GPU_TYPES": '["h100", "l4"]',
           "NIM_ON_EKS_GPUS": "1", "NIM_ON_EKS_LORA": "false"}
    assert np_.main(env) == 0
    assert calls(tmp_path) == ["--profiles tensorrt_llm-h100-fp8-tp1-throughput", "--profiles vllm-bf16-tp1"]
    assert "h100 x 1: tensorrt_llm-h100-fp8-tp1-throughput" in capsys.readouterr().out
    assert np_.main(env) == 0  # a second run (the Job replaced with unchanged profiles) downloads nothing
    assert len(calls(tmp_path)) == 2
    # what cannot be pre-cached falls back to the first start's download: the Job succeeds (so `pulumi up` goes on),
    # says why, and marks nothing
    capsys.readouterr()
    manifest.write_text(profile(TRT, "fp8", 1, "H100"))
    assert np_.main({**env, "NIM_ON_EKS_GPU_TYPES": '["a10g"]'}) == 0
    assert "PRE-CACHE SKIPPED:" in (out := capsys.readouterr().out) and "no profile of this NIM image runs on a10g" in out
    monkeypatch.setattr(np_, "MANIFEST_PATHS", ("/nonexistent/model_manifest.yaml",))
    assert np_.main(env) == 0
    assert "PRE-CACHE SKIPPED: no model manifest at /nonexistent/model_manifest.yaml" in capsys.readouterr().out
    assert len(calls(tmp_path)) == 2


def test_a_failed_download_falls_back_and_marks_nothing(tmp_path, monkeypatch, capsys):
    """download-to-cache failing (no GPU on this node for this NIM release, a network error): the Job still succeeds
    and the cache holds no marker, so a later Job tries again and the model downloads on its first start."""
    nim_with_manifest(tmp_path, monkeypatch, download="#!/bin/sh\necho 'no GPU found' >&2\nexit 3\n")
    env = {"NIM_CACHE_PATH": str(tmp_path / "cache"), "NIM_ON_EKS_GPU_TYPES": '["h100"]', "NIM_ON_EKS_GPUS": "1",
           "NIM_ON_EKS_LORA": "false"}
    assert np_.main(env) == 0
    assert "PRE-CACHE SKIPPED: download-to-cache --profiles tensorrt_llm-h100-fp8-tp1-throughput failed (exit 3)" \
        in capsys.readouterr().out
    assert not list((tmp_path / "cache" / np_.MARKER_DIR).iterdir())


def test_the_container_command_runs_the_program_with_nims_python(tmp_path):
    """The Job's command and args as the container gets them, run by sh: the program finds the python3 beside
    download-to-cache, and a pinned NIM_MODEL_PROFILE is downloaded as given, without reading a manifest."""
    bin_dir = fake_nim(tmp_path)
    spec = precache_component.job_spec(model(), CATALOG.models["meta/llama3-8b-instruct"], claim="c",
                                       cache_path="/model-store", pull_secret="p", api_key_secret="k", labels={})
    container = spec["template"]["spec"]["containers"][0]
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", "NIM_CACHE_PATH": str(tmp_path / "cache"),
           "NIM_MODEL_PROFILE": "tensorrt_llm-l40s-bf16-tp2-throughput"}
    run = subprocess.run([*container["command"], *container["args"]], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert calls(tmp_path) == ["--profiles tensorrt_llm-l40s-bf16-tp2-throughput"]
    assert (tmp_path / "cache" / np_.MARKER_DIR / "tensorrt_llm-l40s-bf16-tp2-throughput").exists()


def test_an_image_without_python_falls_back(tmp_path):
    """No python3 anywhere (nor download-to-cache): the launcher says so and succeeds, as the program would."""
    spec = precache_component.job_spec(model(), CATALOG.models["meta/llama3-8b-instruct"], claim="c",
                                       cache_path="/model-store", pull_secret="p", api_key_secret="k", labels={})
    container = spec["template"]["spec"]["containers"][0]
    (tmp_path / "empty").mkdir()
    run = subprocess.run(["/bin/sh", *container["command"][1:], *container["args"]],
                         env={"PATH": str(tmp_path / "empty")}, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("PRE-CACHE SKIPPED: no python3 in this image"), run


def test_any_failure_of_the_program_falls_back(tmp_path, monkeypatch, capsys):
    """Not only what the program foresees (SystemExit): no PyYAML in the image, an odd manifest, a cache it cannot
    write also end in PRE-CACHE SKIPPED and success, with the traceback in the log (final review)."""
    manifest = tmp_path / "model_manifest.yaml"
    manifest.write_text(FULL)
    monkeypatch.setattr(np_, "MANIFEST_PATHS", (str(manifest),))

    def no_yaml(_text):
        raise ModuleNotFoundError("No module named 'yaml'")

    monkeypatch.setattr(np_, "load_manifest", no_yaml)
    env = {"NIM_CACHE_PATH": str(tmp_path / "cache"), "NIM_ON_EKS_GPU_TYPES": '["h100"]', "NIM_ON_EKS_GPUS": "1"}
    assert np_.main(env) == 0
    captured = capsys.readouterr()
    assert "PRE-CACHE SKIPPED: ModuleNotFoundError: No module named 'yaml'" in captured.out
    assert "Traceback" in captured.err


def test_a_download_slower_than_the_jobs_time_falls_back(tmp_path, monkeypatch, capsys):
    """NGC slower than estimated: the download stops within the Job's download time and falls back, instead of the
    Job hitting its deadline and failing `pulumi up` (final review)."""
    nim_with_manifest(tmp_path, monkeypatch, download="#!/bin/sh\nsleep 5\n")
    env = {"NIM_CACHE_PATH": str(tmp_path / "cache"), "NIM_ON_EKS_GPU_TYPES": '["h100"]', "NIM_ON_EKS_GPUS": "1",
           "NIM_ON_EKS_DOWNLOAD_SECONDS": "0.5"}
    assert np_.main(env) == 0
    assert "did not finish within the Job's download time" in capsys.readouterr().out
    assert not list((tmp_path / "cache" / np_.MARKER_DIR).iterdir())


def test_the_download_gets_the_jobs_deadline_less_the_start_allowance():
    spec = precache_component.job_spec(model(), CATALOG.models["meta/llama3-8b-instruct"], claim="c",
                                       cache_path="/model-store", pull_secret="p", api_key_secret="k", labels={})
    env = {e["name"]: e.get("value") for e in spec["template"]["spec"]["containers"][0]["env"]}
    assert int(env["NIM_ON_EKS_DOWNLOAD_SECONDS"]) == spec["activeDeadlineSeconds"] - 20 * 60


def test_the_program_is_this_file_and_needs_nothing_of_the_project():
    assert precache_component.SCRIPT == Path(np_.__file__).read_text()
    imports = [line for line in precache_component.SCRIPT.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in imports if "planning" in line or "components" in line or "pulumi" in line]


# ------------------------------------------------------------------------------------------------ the Job


def model(**changes):
    m = parse().models[0]
    return dataclasses.replace(m, **changes)


def job(plan, name=DEV):
    return obj(plan, JOB, f"{name}-precache")


def test_the_job(dev_plan):
    j = job(dev_plan)
    sts = obj(dev_plan, "kubernetes:apps/v1:StatefulSet", DEV).inputs["spec"]["template"]["spec"]
    spec = j.inputs["spec"]
    pod = spec["template"]["spec"]
    [c] = pod["containers"]
    assert j.inputs["metadata"]["namespace"] == "nim"
    assert c["image"] == sts["containers"][0]["image"]  # the model's own NIM image: its manifest, its tools
    env = {e["name"]: e for e in c["env"]}
    assert env["NGC_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "ngc-api", "key": "NGC_API_KEY"}}
    assert env["NIM_CACHE_PATH"]["value"] == "/model-store"
    assert {"name": "model-store", "mountPath": "/model-store"} in c["volumeMounts"]
    assert pod["volumes"] == [{"name": "model-store",
                               "persistentVolumeClaim": {"claimName": f"{DEV}-cache"}}]  # the StatefulSet's cache
    assert pod["imagePullSecrets"] == sts["imagePullSecrets"] == [{"name": "ngc-secret"}]
    assert json.loads(env["NIM_ON_EKS_GPU_TYPES"]["value"]) == list(parse().models[0].gpu_types)
    assert env["NIM_ON_EKS_GPUS"]["value"] == "1" and env["NIM_ON_EKS_LORA"]["value"] == "false"
    # non-root like NIM, nothing more than it needs
    assert pod["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "runAsNonRoot": True,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                    "runAsNonRoot": True}
    assert pod["automountServiceAccountToken"] is False
    assert "nvidia.com/gpu" not in json.dumps(c["resources"])  # no GPU
    assert c["resources"] == {"requests": {"cpu": f"{PRECACHE_JOB.cpu_m}m", "memory": f"{PRECACHE_JOB.memory_mib}Mi"},
                              "limits": {"memory": f"{PRECACHE_MEMORY_LIMIT_MIB}Mi"}}
    # on Karpenter's CPU pool, x86_64 nodes (NIM images are amd64), never GPU nodes
    [term] = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert {e["key"]: e["values"] for e in term["matchExpressions"]} == {
        "nim-on-eks/node-pool": ["cpu"], "kubernetes.io/arch": ["amd64"]}
    assert "tolerations" not in pod
    assert spec["template"]["metadata"]["annotations"] == {"karpenter.sh/do-not-disrupt": "true"}
    # its pods must not join the model's Service or PodDisruptionBudget
    service = obj(dev_plan, "kubernetes:core/v1:Service", DEV).inputs["spec"]["selector"]
    assert not service.items() <= spec["template"]["metadata"]["labels"].items()
    # kept once done (no TTL: Pulumi would create a deleted Job again), replaced when it failed
    assert "ttlSecondsAfterFinished" not in spec
    assert j.inputs["metadata"]["annotations"] == {"pulumi.com/replaceUnready": "true"}
    assert pod["restartPolicy"] == "Never" and spec["backoffLimit"] >= 1


def test_the_statefulset_waits_for_the_job_and_pulumi_for_the_download(dev_plan):
    j = job(dev_plan)
    sts = obj(dev_plan, "kubernetes:apps/v1:StatefulSet", DEV)
    cache = obj(dev_plan, "kubernetes:core/v1:PersistentVolumeClaim", f"{DEV}-cache")
    assert j.urn in sts.dependencies
    assert dev_plan.depends_on(j, cache)
    for what in ("nim-on-eks-dev-storage-volumes-released", "nim-on-eks-dev-karpenter-cpu-pool",
                 "nim-on-eks-dev-nim-api-key", "nim-on-eks-dev-nim-pull-secret"):
        assert dev_plan.depends_on(j, next(r for r in dev_plan.resources if r.name == what)), what
    minutes = precache_timeout_minutes(CATALOG.models["meta/llama3-8b-instruct"].cache_gib)
    assert j.options["custom_timeouts"] == {"create": f"{minutes}m", "update": f"{minutes}m"}
    assert j.inputs["spec"]["activeDeadlineSeconds"] == minutes * 60


def test_the_job_changes_with_the_image_tag_and_gpus_and_only_then():
    """Its inputs are what replaces and re-runs it: a new tag or GPU count gives a new Job; an unchanged model
    gives the very same one (no download on a second `pulumi up`)."""
    entry = CATALOG.models["meta/llama-3.1-8b-instruct"]
    base = model(name=entry.name, image_tag=entry.tag, gpus=1, gpu_types=("h100", "l40s"))

    def spec(m):
        return precache_component.job_spec(m, entry, claim="c", cache_path="/model-store", pull_secret="p",
                                           api_key_secret="k", labels={})

    assert spec(base) == spec(dataclasses.replace(base))
    assert spec(dataclasses.replace(base, image_tag="1.8.5")) != spec(base)
    assert spec(dataclasses.replace(base, gpus=2)) != spec(base)
    assert spec(dataclasses.replace(base, gpu_types=("h100",))) != spec(base)
    pinned = spec(dataclasses.replace(base, env=(("NIM_MODEL_PROFILE", "abc"),)))
    assert {"name": "NIM_MODEL_PROFILE", "value": "abc"} in pinned["template"]["spec"]["containers"][0]["env"]


def test_a_new_tag_in_the_plan_changes_the_job():
    tagged = plan_for('nim_models=[{"name": "meta/llama3-8b-instruct", "image_tag": "1.0.2"}]')
    assert job(tagged).inputs["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.0.2")


def test_every_model_gets_its_job():
    plan = plan_for(*THREE_MODELS)
    names = {r.inputs["metadata"]["name"] for r in plan.of_type(JOB)}
    assert names == {f"{s.inputs['metadata']['name']}-precache"
                     for s in plan.of_type("kubernetes:apps/v1:StatefulSet")}
    assert len(names) == 3


def test_precache_off_means_no_job_and_a_warning():
    plan = plan_for('nim_models=[{"name": "meta/llama3-8b-instruct", "precache": false}, '
                    '"meta/llama-3.2-1b-instruct"]')
    assert plan.error is None, plan.error
    assert [r.inputs["metadata"]["name"] for r in plan.of_type(JOB)] == ["nim-llm-llama-3-2-1b-instruct-precache"]
    sts = obj(plan, "kubernetes:apps/v1:StatefulSet", DEV)
    assert not [d for d in sts.dependencies if ":batch/v1:Job::" in d]
    assert any(w.startswith("meta/llama3-8b-instruct is not pre-cached (its precache is false): its first replica "
                            "downloads the weights on its GPU node") for w in plan.warnings), plan.warnings


def test_a_catalog_entry_that_cannot_be_precached_says_why():
    entry = dataclasses.replace(CATALOG.models["meta/llama3-8b-instruct"], precache=False,
                                precache_reason="no download-to-cache in 24.05 images")
    assert precache_component.precache_off_reason(model(), entry) == \
        "the catalog says it cannot be: no download-to-cache in 24.05 images"
    assert precache_component.precache_off_reason(model(), CATALOG.models["meta/llama3-8b-instruct"]) is None


# ------------------------------------------------------------------------------------------ the estimate


def test_download_estimate_and_timeout():
    assert PRECACHE_DOWNLOAD_MIB_S == 50
    assert precache_download_minutes(300) == pytest.approx(300 * 1024 / 50 / 60)  # 70B: ~102 minutes
    assert precache_download_minutes(40, rate_mib_s=100) == pytest.approx(40 * 1024 / 100 / 60)
    assert precache_timeout_minutes(40) == 20 + 14
    assert precache_timeout_minutes(300) == 20 + 103
    # a bigger cache waits longer, and never less than a node launch and an image pull
    assert precache_timeout_minutes(10) < precache_timeout_minutes(40) < precache_timeout_minutes(300)


# ---------------------------------------------------------------------------------- catalog and model fields


@pytest.mark.parametrize("fields, expected", [
    ({"precache": False}, "precache_reason: missing; `precache: false` must say why"),
    ({"precache": "no"}, "precache: 'no' has the wrong type"),
    ({"precache_reason": "because"}, "precache_reason: given, but precache is not false"),
])
def test_catalog_precache_flag_is_validated(fields, expected):
    data = yaml.safe_load((ROOT / "models.yaml").read_text())
    data["models"]["meta/llama3-8b-instruct"].update(fields)
    with pytest.raises(CatalogError) as info:
        parse_catalog(data)
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_catalog_precache_flag_with_its_reason():
    data = yaml.safe_load((ROOT / "models.yaml").read_text())
    data["models"]["meta/llama3-8b-instruct"].update(precache=False, precache_reason="no manifest")
    entry = parse_catalog(data).models["meta/llama3-8b-instruct"]
    assert (entry.precache, entry.precache_reason) == (False, "no manifest")
    assert all(m.precache for m in CATALOG.models.values())  # every NIM in the catalog has download-to-cache


def test_model_precache_field_names_the_key():
    assert not parse(nim_models='[{"name": "meta/llama3-8b-instruct", "precache": false}]').models[0].precache
    [problem] = problems(nim_models='[{"name": "meta/llama3-8b-instruct", "precache": "sometimes"}]')
    assert problem.startswith("nim_models[0].precache:") and "true or false" in problem


def test_graviton_only_cpu_families_are_refused_while_a_model_is_pre_cached():
    """The pre-cache Job runs the NIM image, amd64 only: with arm64-only CPU families it would stay Pending until its
    deadline and fail `pulumi up` (review of issue 13). Without pre-caching those families are fine."""
    assert problems(cpu_instance_families='["m7g","c7g"]') == [
        "cpu_instance_families: m7g, c7g give arm64 nodes only, but nim-precache (a model with precache) runs on "
        "amd64 only; allowed: add a family of that architecture, such as m7i"]
    assert parse(cpu_instance_families='["m7g","c7g"]',
                 nim_models='[{"name": "meta/llama3-8b-instruct", "precache": false}]').cpu.instance_families == (
        "m7g", "c7g")
