"""Speed figures, measured and printed: the test suite asserts on none of them, since wall-clock time stretches on a
loaded machine (two test workers on two cores) without anything being wrong.

    python -m tools.bench             # make bench
    python -m tools.bench --check     # exit 1 when a figure is over its budget

- the offline plan (`make plan`, tools/mockrun.py) of each recorded stack (tools/baseline.py), after a warm-up run;
- the benchmark client's own cost against a server that answers at once (tools/client_overhead.py);
- how far the client's TTFT and inter-token figures land from a server's known delays (tools/fake_openai.py),
  including at concurrency 16 against a server with a small accept backlog (the connection burst of issue 15).

Each figure is printed beside its budget: a limit a healthy, idle machine stays far below.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass

from tools import baseline, mockrun
from tools.client_overhead import client_summary, measure
from tools.fake_openai import FakeServer

# The server's known delays for the accuracy figures.
TTFT_S, ITL_S, TOKENS = 0.25, 0.03, 12
# The issue 15 burst: 64 requests at concurrency 16 to a server slow to accept behind a small backlog
# (tools/fake_openai.py `_Server`); unwarmed, its p99 TTFT was ~1.1 s against the server's 0.1 s.
BURST_TTFT_S, BURST_BACKLOG, BURST_ACCEPT_S = 0.1, 8, 0.02


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    budget: float  # the figure's magnitude stays below this on a healthy machine

    @property
    def ok(self) -> bool:
        return abs(self.value) < self.budget


def plan_figures(runs: int) -> list[Figure]:
    figures = []
    for name, (stack, overrides) in baseline.STACKS.items():
        mockrun.run(stack, list(overrides))  # warm-up: imports, caches
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            plan = mockrun.run(stack, list(overrides))
            times.append(time.perf_counter() - start)
            if plan.error:
                raise RuntimeError(f"{name}: {plan.error}")
        figures.append(Figure(f"offline plan of the {name} stack, median of {runs}", statistics.median(times), "s",
                              10))
    return figures


def client_figures() -> list[Figure]:
    overhead = measure()
    with FakeServer(ttft=TTFT_S, itl=ITL_S, tokens=TOKENS) as server:
        summary = client_summary(server, requests=8, concurrency=2)
    with FakeServer(ttft=BURST_TTFT_S, itl=0.005, tokens=4, backlog=BURST_BACKLOG,
                    accept_delay=BURST_ACCEPT_S) as server:
        burst = client_summary(server, requests=64, concurrency=16)
    return [
        Figure("client overhead per request (TTFT, instant server), p50", overhead["per_request_ms"], "ms", 50),
        Figure("client overhead per token (ITL, instant server), p50", overhead["per_chunk_us"], "us", 2000),
        Figure(f"client TTFT minus the server's {TTFT_S * 1000:.0f} ms, p50",
               (summary["ttft_s"]["p50"] - TTFT_S) * 1000, "ms", 60),
        Figure(f"client ITL minus the server's {ITL_S * 1000:.0f} ms, p50",
               (summary["itl_s"]["p50"] - ITL_S) * 1000, "ms", 10),
        Figure(f"client TTFT minus the server's {BURST_TTFT_S * 1000:.0f} ms at concurrency 16, small accept "
               f"backlog, p99", (burst["ttft_s"]["p99"] - BURST_TTFT_S) * 1000, "ms", 300),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="plan runs per stack (default 5)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a figure is over its budget")
    args = parser.parse_args(argv)
    figures = [*plan_figures(args.runs), *client_figures()]
    width = max(len(f.name) for f in figures)
    for f in figures:
        print(f"{f.name:<{width}}  {f.value:>9.2f} {f.unit:<2}  budget {f.budget:g} {f.unit}"
              f"{'' if f.ok else '  OVER BUDGET'}")
    return 1 if args.check and not all(f.ok for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
