"""Measure the benchmark client's own overhead against a local server that answers instantly.

    python -m tools.client_overhead

The server (tools/fake_openai.py) streams tokens with no delay, so everything measured is the cost of the
client plus the local server and loopback: an upper bound on what the client adds to real measurements.
"""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
from pathlib import Path

from client.bench import parser, run
from tools.fake_openai import FakeServer


def measure(requests: int = 20, tokens: int = 500) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, FakeServer(ttft=0.0, itl=0.0, tokens=tokens) as server:
        summary = Path(tmp) / "s.json"
        args = parser().parse_args(["-u", server.url, "--iterations", str(requests), "--concurrency", "1",
                                    "--max-tokens", str(tokens), "--results-file", str(Path(tmp) / "r.txt"),
                                    "--json", str(summary)])
        assert asyncio.run(run(args, io.StringIO(), io.StringIO())) == 0
        s = json.loads(summary.read_text())
    return {"per_request_ms": s["ttft_s"]["p50"] * 1000, "per_chunk_us": s["itl_s"]["p50"] * 1e6}


if __name__ == "__main__":
    result = measure()
    print(f"time to first token with an instant server (per-request overhead), p50: {result['per_request_ms']:.2f} ms")
    print(f"gap between tokens with an instant server (per-chunk overhead), p50: {result['per_chunk_us']:.0f} us")
