"""AIPerf in the cluster: the original blueprint's test as one `aiperf profile` command per model, where its results
land and how to copy them back, and a concurrency sweep. Pure; components/webui.py (AIPerf) runs the pod and
__main__.py exports these.

The flags are AIPerf 0.13.0's (planning/versions.py AIPERF_VERSION; aiperf/config/flags/cli_config.py of its wheel),
the GenAI-Perf names it keeps: `--url` is the server's base URL (AIPerf appends /v1/chat/completions for
`--endpoint-type chat`), `--num-prompts` is `--num-dataset-entries`, `--concurrency` takes a comma-separated list
and then runs one benchmark per value (a sweep). Checked by running the blueprint command of this module with the
0.13.0 wheel against tools/fake_openai.py (2026-11-27): it wrote profile_export_aiperf.json and .csv,
profile_export.jsonl and the console table under its `--artifact-dir`.

Plots: `aiperf plot` renders PNGs through plotly's kaleido, which needs Chrome ("PNG export requires Chrome or
Chromium", `aiperf plot --help`; without it every plot fails with "Kaleido requires Google Chrome"). The pod has
none (a slim image, read-only root, no root to install Chrome's system libraries), so no `--auto-plot` here: PNGs
are made on the user's machine from the copied files, or the pod serves AIPerf's interactive dashboard
(`aiperf plot --dashboard`, a Dash web app that needs no browser on the server) to a port-forward."""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path

# The pod: its Deployment and label value (planning/flows.py AIPERF selects it), and its working directory, an
# emptyDir where the artifacts, the Hugging Face cache (HOME) and the venv live.
NAME = "aiperf"
WORK_DIR = "/work"
ARTIFACTS_DIR = f"{WORK_DIR}/artifacts"
VENV_DIR = f"{WORK_DIR}/venv"
# Every package the install resolves to, pinned (data/aiperf-constraints.txt says how it was made): pip's constraints
# file, mounted from a ConfigMap, so the dependencies of a start are the same as of every other.
CONSTRAINTS_FILE = Path(__file__).resolve().parent.parent / "data" / "aiperf-constraints.txt"
CONSTRAINTS_DIR = "/constraints"


def constraints() -> str:
    return CONSTRAINTS_FILE.read_text()


def constraints_digest() -> str:
    """A short digest of the constraints: in the pod template, so a changed file re-installs."""
    return hashlib.sha256(constraints().encode()).hexdigest()[:16]


# The optional Secret holding a Hugging Face token (key HF_TOKEN) for a gated tokenizer (README, AIPerf)
HF_TOKEN_SECRET = "hf-token"


@dataclass(frozen=True)
class Load:
    """One test's shape: synthetic prompts of `input_tokens`, answers of `output_tokens`, `requests` requests with
    at most `concurrency` in flight, over `prompts` distinct prompts, after `warmup` requests left out of the figures
    (NVIDIA's benchmarking guide warms the server up before it measures: the first requests pay one-time costs)."""

    input_tokens: int
    output_tokens: int
    concurrency: int | tuple[int, ...]
    requests: int
    prompts: int
    warmup: int


# The original blueprint's test (aws-samples NIM on EKS, GenAI-Perf): 200 tokens in, 100 out, concurrency 10,
# 100 prompts.
BLUEPRINT = Load(input_tokens=200, output_tokens=100, concurrency=10, requests=100, prompts=100, warmup=10)
# Where time to first token starts to climb: the blueprint's shape at powers of two up to well past the 25
# concurrent requests a replica is sized for by default (planning/scaling.py). AIPerf runs every level with the same
# request count, each in its own directory `concurrency_<N>/` (and `aggregate/`), which `aiperf plot` reads as one
# sweep. 200 a level: a p90 from 200 samples, about three rounds at 64 in flight, and at 1 in flight 200 answers of
# about a second each (100 tokens at ~10 ms): the whole sweep takes minutes, not an hour.
SWEEP = Load(input_tokens=200, output_tokens=100, concurrency=(1, 2, 4, 8, 16, 32, 64), requests=200, prompts=100,
             warmup=10)


def base_url(host: str, port: int) -> str:
    """The server AIPerf calls, as its `--url` takes it (no /v1)."""
    return f"http://{host}:{port}"


def profile_args(served_model_name: str, url: str, tokenizer: str, load: Load, artifact_dir: str) -> list[str]:
    """`aiperf profile` for one model and one load: streamed chat, fixed lengths, results in `artifact_dir`."""
    levels = load.concurrency if isinstance(load.concurrency, tuple) else (load.concurrency,)
    return [
        "aiperf", "profile",
        "--model", served_model_name, "--url", url, "--endpoint-type", "chat", "--streaming",
        # the answer length as `max_tokens`, as GenAI-Perf sent it: AIPerf's default `max_completion_tokens` is refused
        # (400) by NIM images on vLLM before PR #9837 (2024-10), such as the catalog's 2024 Llama 3 8B; AIPerf's own
        # error hint names this flag (review of the change, /tmp/review-aiperf.md H1, tried with the 0.13.0 wheel)
        "--use-legacy-max-tokens",
        "--tokenizer", tokenizer,
        "--synthetic-input-tokens-mean", str(load.input_tokens), "--synthetic-input-tokens-stddev", "0",
        "--output-tokens-mean", str(load.output_tokens), "--output-tokens-stddev", "0",
        # NIM stops at the end-of-sequence token otherwise, and answers would be shorter than asked
        "--extra-inputs", f"min_tokens:{load.output_tokens}", "--extra-inputs", "ignore_eos:true",
        "--concurrency", ",".join(map(str, levels)), "--request-count", str(load.requests),
        "--num-prompts", str(load.prompts), "--warmup-request-count", str(load.warmup),
        "--artifact-dir", artifact_dir, "--ui-type", "simple",
    ]


def exec_command(namespace: str, args: list[str]) -> str:
    """`args` run in the AIPerf pod, from the user's machine."""
    return shlex.join(["kubectl", "-n", namespace, "exec", f"deploy/{NAME}", "--", *args])


def artifact_dir(k8s_name: str, run: str) -> str:
    """Where one model's run keeps its files (profile_export_aiperf.json and .csv, profile_export.jsonl, plots/)."""
    return f"{ARTIFACTS_DIR}/{k8s_name}/{run}"


def blueprint_command(namespace: str, served_model_name: str, url: str, tokenizer: str, k8s_name: str) -> str:
    return exec_command(namespace, profile_args(served_model_name, url, tokenizer, BLUEPRINT,
                                                artifact_dir(k8s_name, "blueprint")))


def sweep_command(namespace: str, served_model_name: str, url: str, tokenizer: str, k8s_name: str) -> str:
    return exec_command(namespace, profile_args(served_model_name, url, tokenizer, SWEEP,
                                                artifact_dir(k8s_name, "sweep")))


DASHBOARD_PORT = 8050  # aiperf plot --dashboard's default


def dashboard_command(namespace: str, run_dir: str = ARTIFACTS_DIR) -> str:
    """AIPerf's plots of the runs under `run_dir`, served on the pod's loopback: `kubectl port-forward` reaches it
    (from the node, as every port-forward does), nothing else in the cluster can."""
    return exec_command(namespace, ["aiperf", "plot", "--dashboard", "--host", "127.0.0.1",
                                    "--port", str(DASHBOARD_PORT), run_dir])


def copy_command(namespace: str, destination: str = "./aiperf-artifacts") -> str:
    """Copies every run's files (JSON, CSV, JSONL, PNG plots) to the user's machine; `kubectl cp` needs the pod's name
    (not the Deployment's) and `tar` in the image (Debian's, in the Python image)."""
    pod = f"$(kubectl -n {namespace} get pod -l app.kubernetes.io/name={NAME} -o jsonpath='{{.items[0].metadata.name}}')"
    return f"kubectl -n {namespace} cp {pod}:{ARTIFACTS_DIR} {shlex.quote(destination)}"
