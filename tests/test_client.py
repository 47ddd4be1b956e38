"""The benchmark client against a local streaming server with known delays.

The client's figures are checked against the delays the server keeps, with bounds that hold on a loaded machine
(these tests run beside the others): a delay can only stretch, never shrink. How fast the client is, and how close
its figures come on an idle machine, is `make bench` (tools/bench.py)."""

from __future__ import annotations

import asyncio
import io
import json
import socket

import pytest

from client.bench import SEPARATOR, load_prompts, parser, percentile, run
from tools.fake_openai import FakeServer


def run_client(tmp_path, *argv: str) -> tuple[int, str, str]:
    args = parser().parse_args([*argv, "--results-file", str(tmp_path / "results.txt")])
    out, err = io.StringIO(), io.StringIO()
    code = asyncio.run(run(args, out, err))
    return code, out.getvalue(), err.getvalue()


def test_measures_ttft_and_inter_token_latency(tmp_path):
    ttft, itl, tokens = 0.5, 0.03, 12
    with FakeServer(ttft=ttft, itl=itl, tokens=tokens) as server:
        code, out, _ = run_client(tmp_path, "-u", server.url, "--iterations", "4", "--concurrency", "2",
                                  "--json", str(tmp_path / "s.json"))
    assert code == 0, out
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["succeeded"] == 4 and summary["failed"] == 0
    # The server sleeps before it writes, so a figure comes out short only if the client measures the wrong span;
    # a busy machine only adds time. The TTFT is a time to the first token (not to the last: 0.83 s), the ITL a gap
    # between tokens (not the latency spread over the tokens: 0.07 s), the latency TTFT + 11 gaps.
    end_to_end = ttft + (tokens - 1) * itl
    assert ttft <= summary["ttft_s"]["p50"] < ttft + 0.25
    assert 0.02 < summary["itl_s"]["p50"] < itl + 0.03
    assert end_to_end <= summary["latency_s"]["p50"] < end_to_end + 0.25
    assert summary["output_tokens"] == 48
    assert "OK: all 4 requests succeeded" in out


def test_counts_chunks_when_the_server_reports_no_usage(tmp_path):
    with FakeServer(ttft=0.05, itl=0.01, tokens=7, usage=False) as server:
        code, _, _ = run_client(tmp_path, "-u", server.url, "--iterations", "2", "--api", "completions",
                                "--json", str(tmp_path / "s.json"))
    assert code == 0
    assert json.loads((tmp_path / "s.json").read_text())["output_tokens"] == 14


def test_concurrency_is_honoured(tmp_path):
    # the server answers only once `hold` requests are in flight (or after 10 s): no race with a busy machine
    with FakeServer(ttft=0.05, itl=0.005, tokens=3, hold=3) as server:
        code, _, _ = run_client(tmp_path, "-u", server.url, "--iterations", "9", "--concurrency", "3")
        assert code == 0
        assert server.max_in_flight == 3 and server.requests == 9
    with FakeServer(ttft=0.05, itl=0.005, tokens=3, hold=6) as server:
        run_client(tmp_path, "-u", server.url, "--iterations", "6")  # default: all at once
        assert server.max_in_flight == 6


def test_failures_set_the_exit_status_and_are_listed(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("first\nplease FAIL here\nthird\n")
    with FakeServer(ttft=0.01, itl=0.001, tokens=3) as server:
        code, out, _ = run_client(tmp_path, "-u", server.url, "--input-prompts", str(prompts))
    assert code == 1
    assert "request 1: FAILED after" in out and "HTTP 400: bad prompt" in out
    assert "FAILED: 1 of 3 requests failed" in out
    assert "Failures (1):" in out
    with FakeServer() as server:
        code, out, _ = run_client(tmp_path, "-u", server.url, "--model-name", "broken", "--iterations", "2")
    assert code == 1 and out.count("HTTP 500: model crashed") >= 2


def test_the_api_key_reaches_an_authenticated_endpoint(tmp_path):
    """The gateway's keys (issue 14): `--api-key` is sent as `Authorization: Bearer`; without it every request is
    refused with 401 and the exit status says so."""
    with FakeServer(ttft=0.01, itl=0.001, tokens=3, api_key="k" * 48) as server:
        code, out, _ = run_client(tmp_path, "-u", server.url, "--iterations", "2", "--api-key", "k" * 48)
        assert code == 0, out
        code, out, _ = run_client(tmp_path, "-u", server.url, "--iterations", "2")
    assert code == 1 and out.count("401") >= 2, out


def test_server_down_gives_one_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = run_client(tmp_path, "-u", f"http://127.0.0.1:{port}/v1", "--timeout", "2")
    assert code == 2
    assert err.count("error:") == 1 and f"cannot reach http://127.0.0.1:{port}/v1" in err
    assert "Traceback" not in err and out == ""


def test_results_file_is_in_request_order(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"prompt {i}" for i in range(6)) + "\n")
    with FakeServer(ttft=0.01, itl=0.001, tokens=2) as server:
        code, out, _ = run_client(tmp_path, "-u", server.url, "--input-prompts", str(prompts), "--offset", "2",
                                  "--iterations", "5")
    assert code == 0
    blocks = (tmp_path / "results.txt").read_text().split(SEPARATOR + "\n")
    assert blocks[-1] == ""
    assert [b.splitlines()[0] for b in blocks[:-1]] == [f"request {i}" for i in range(5)]
    assert [b.splitlines()[1] for b in blocks[:-1]] == [f"prompt: prompt {i % 6}" for i in (2, 3, 4, 5, 6)]
    assert all("response: tok0 tok1" in b for b in blocks[:-1])


def test_per_request_lines_label_seconds_and_milliseconds(tmp_path):
    with FakeServer(ttft=0.1, itl=0.01, tokens=3) as server:
        _, out, _ = run_client(tmp_path, "-u", server.url, "--iterations", "1")
    [line] = [l for l in out.splitlines() if l.startswith("[meta/llama3-8b-instruct] request 0:")]
    seconds, millis = line.split("latency ")[1].split(" s (")
    assert float(seconds) * 1000 == pytest.approx(float(millis.split(" ms)")[0]), abs=1)
    for row in ("requests sent", "succeeded", "failed", "wall time (s)", "requests/s", "output tokens/s",
                "latency", "TTFT", "inter-token"):
        assert row in out


@pytest.mark.parametrize("values, q, expected", [([1, 2, 3, 4], 50, 2.5), ([5], 99, 5), ([], 50, None),
                                                  (list(range(101)), 90, 90)])
def test_percentile(values, q, expected):
    assert percentile(values, q) == expected


def test_prompts_file_and_flags():
    prompts = load_prompts(parser().get_default("input_prompts"), None, 0)
    assert len(prompts) == 20
    assert load_prompts(parser().get_default("input_prompts"), 3, 19)[1] == prompts[0]
    defaults = parser().parse_args([])
    assert (defaults.url, defaults.results_file, defaults.model_name, defaults.api) == (
        "http://localhost:8000/v1", "results.txt", "meta/llama3-8b-instruct", "chat")


def test_the_overhead_measurement_runs():
    """The figures `make bench` prints (how small they are is not asserted here: that is wall-clock time)."""
    from tools.client_overhead import measure
    result = measure(requests=2, tokens=5)
    assert set(result) == {"per_request_ms", "per_chunk_us"} and all(v >= 0 for v in result.values())
