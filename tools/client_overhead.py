"""Measure the benchmark client's own overhead against a local server that answers instantly.

    python -m tools.client_overhead

The server (tools/fake_openai.py) streams tokens with no delay, so everything measured is the cost of the
client plus the local server and loopback: an upper bound on what the client adds to real measurements.
`make bench` (tools/bench.py) prints these figures with the others.
"""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from client.bench import parser, run
from tools.fake_openai import FakeServer


def client_summary(server: FakeServer, requests: int, concurrency: int = 1,
                   max_tokens: int | None = None, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The benchmark client's JSON summary (`--json`) of `requests` requests to `server` (`extra`: more flags)."""
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "s.json"
        argv = ["-u", server.url, "--iterations", str(requests), "--concurrency", str(concurrency),
                "--results-file", str(Path(tmp) / "r.txt"), "--json", str(summary)]
        if max_tokens:
            argv += ["--max-tokens", str(max_tokens)]
        argv += extra
        out = io.StringIO()
        if asyncio.run(run(parser().parse_args(argv), out, io.StringIO())) != 0:
            raise RuntimeError(f"the client failed against {server.url}:\n{out.getvalue()}")
        return json.loads(summary.read_text())


def measure(requests: int = 20, tokens: int = 500) -> dict[str, float]:
    with FakeServer(ttft=0.0, itl=0.0, tokens=tokens) as server:
        s = client_summary(server, requests, max_tokens=tokens)
    return {"per_request_ms": s["ttft_s"]["p50"] * 1000, "per_chunk_us": s["itl_s"]["p50"] * 1e6}


if __name__ == "__main__":
    result = measure()
    print(f"time to first token with an instant server (per-request overhead), p50: {result['per_request_ms']:.2f} ms")
    print(f"gap between tokens with an instant server (per-chunk overhead), p50: {result['per_chunk_us']:.0f} us")
