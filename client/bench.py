"""Benchmark client for OpenAI-compatible endpoints (NIM through the gateway or `kubectl port-forward`).

Streams every request and measures, per request, time to first token (TTFT), inter-token latency (ITL: the mean
gap between output tokens after the first), end-to-end latency and output tokens; then prints a summary with
p50/p90/p99, and goodput against SLOs when given. Load is a fixed concurrency (closed loop) or Poisson arrivals at a
request rate (open loop, optionally capped), for a number of requests or a duration; `--sweep-concurrency` runs
several levels and plots them. The connection pool is opened and warmed before the clock starts, so connecting
never lands in TTFT; connections opened during a run are counted and timed apart. Exit status 0 only when every
request (warm-ups included) succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import csv
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx2
import openai
from openai import AsyncOpenAI

DEFAULT_PROMPTS = Path(__file__).resolve().parent / "prompts.txt"
SEPARATOR = "========="
DEFAULT_PLOT = "sweep.png"
SLO_KEYS = ("ttft", "itl", "e2e")
# Connections warmed with --request-rate, no --concurrency cap and no warm-ups to size the pool from (nothing else
# says how many will be in flight); with warm-ups, `rate_connections` sizes it, up to MAX_RATE_CONNECTIONS.
DEFAULT_RATE_CONNECTIONS = 16
MAX_RATE_CONNECTIONS = 256
# Idle connections stay in the pool this long (httpx's default is 5 s), so the client never drops a warm one within a
# run itself; kept under the NLB's TLS idle timeout of 350 s (fixed by AWS, planning/endpoint.py), after which a
# send on the connection would get a reset, a failed request. A server that closes idle connections earlier shows
# up as connects during the run: NIM's, 5 s (TIMEOUT_KEEP_ALIVE of vLLM's and TensorRT-LLM's OpenAI servers).
KEEPALIVE_S = 300.0
REQUEST_FIELDS = ("concurrency", "request_id", "scheduled_s", "start_s", "queue_s", "ok", "error", "ttft_s",
                  "itl_s", "latency_s", "output_tokens", "tokens_from_usage", "connect_s", "met_slo")


@dataclass
class Result:
    request_id: int
    prompt: str
    ok: bool = False
    error: str = ""
    text: str = ""
    latency_s: float = 0.0  # end to end
    ttft_s: float | None = None
    itl_s: float | None = None  # mean gap between tokens after the first
    output_tokens: int = 0
    tokens_from_usage: bool = False
    concurrency: int | None = None  # the cap this request ran under (None: uncapped Poisson arrivals)
    scheduled_s: float | None = None  # with --request-rate: its planned send time, from the start of the clock
    start_s: float = 0.0  # when it was sent, from the start of the clock
    queue_s: float | None = None  # with --request-rate: sent this late (held by the cap), inside TTFT and latency
    connect_s: float | None = None  # a connection opened for it during the run: seconds to connect
    met_slo: bool | None = None  # with --slo


@dataclass
class Summary:
    model: str
    url: str
    api: str
    requests: int
    succeeded: int
    failed: int
    concurrency: int | None
    wall_time_s: float
    requests_per_s: float
    output_tokens: int
    output_tokens_per_s: float
    request_rate: float | None = None
    achieved_rate: float | None = None  # with --request-rate: requests sent per second, first send to last
    duration_s: float | None = None
    warmup: int = 0
    warmup_failed: int = 0
    connections_warmed: int = 0
    connects_during_run: int = 0
    latency_s: dict[str, float | None] = field(default_factory=dict)
    ttft_s: dict[str, float | None] = field(default_factory=dict)
    itl_s: dict[str, float | None] = field(default_factory=dict)
    connect_s: dict[str, float | None] = field(default_factory=dict)
    queue_s: dict[str, float | None] = field(default_factory=dict)  # with --request-rate: sent past schedule
    slo: dict[str, float] = field(default_factory=dict)
    goodput: dict[str, float] | None = None  # requests that met every SLO: count, share of all sent, per second
    failures: list[dict[str, Any]] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: list[float]) -> dict[str, float | None]:
    return {f"p{q}": percentile(values, q) for q in (50, 90, 99)}


def read_prompts(path: Path) -> list[str]:
    prompts = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"{path} has no prompts")
    return prompts


def load_prompts(path: Path, iterations: int | None, offset: int) -> list[str]:
    """`iterations` prompts starting at `offset`, wrapping around the file (default: each prompt once)."""
    prompts = read_prompts(path)
    count = iterations if iterations is not None else len(prompts)
    return [prompts[(offset + i) % len(prompts)] for i in range(count)]


# Connect timing: httpx's `trace` extension reports the pool's connect steps to a callback, inside the task that
# sends the request; each request puts a dict of its own in this context variable for the callback to fill.
_TIMING: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("timing", default=None)


async def _trace(event: str, info: dict[str, Any]) -> None:
    timing = _TIMING.get()
    if timing is None:
        return
    if event == "connection.connect_tcp.started":
        timing["connect_start"] = time.perf_counter()
    elif event in ("connection.connect_tcp.complete", "connection.start_tls.complete") and "connect_start" in timing:
        timing["connect_s"] = time.perf_counter() - timing["connect_start"]


async def _traced(request: httpx2.Request) -> None:
    request.extensions["trace"] = _trace


def http_client() -> httpx2.AsyncClient:
    """The SDK's own HTTP client with no cap on idle connections (its default keeps 100) and a long keep-alive."""
    limits = httpx2.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=KEEPALIVE_S)
    return openai.DefaultAsyncHttpxClient(limits=limits, event_hooks={"request": [_traced]})


async def run_one(client: AsyncOpenAI, args: argparse.Namespace, request_id: int, prompt: str,
                  clock: float | None = None, scheduled: float | None = None) -> Result:
    """One streamed request. With a `scheduled` send time (seconds from `clock`), TTFT and latency run from that
    time, not from when the request actually left: a request held back by the client (a --concurrency cap under
    --request-rate) would otherwise hide its wait, as a user who arrived at that time sees it (coordinated
    omission); the wait itself is `queue_s`."""
    result = Result(request_id=request_id, prompt=prompt, scheduled_s=scheduled)
    pieces: list[str] = []
    chunks = 0
    first = last = None
    timing: dict[str, float] = {}
    token = _TIMING.set(timing)
    sent = time.perf_counter()
    result.start_s = sent - clock if clock is not None else 0.0
    # asyncio may wake a hair before the scheduled time: then the span runs from the actual send
    start = min(sent, clock + scheduled) if clock is not None and scheduled is not None else sent
    if scheduled is not None:
        result.queue_s = max(result.start_s - scheduled, 0.0)
    try:
        common = {"model": args.model_name, "max_tokens": args.max_tokens, "stream": True,
                  "stream_options": {"include_usage": True}, "timeout": args.timeout}
        if args.api == "chat":
            stream = await client.chat.completions.create(messages=[{"role": "user", "content": prompt}], **common)
        else:
            stream = await client.completions.create(prompt=prompt, **common)
        async for chunk in stream:
            if chunk.usage is not None and chunk.usage.completion_tokens is not None:
                result.output_tokens = chunk.usage.completion_tokens
                result.tokens_from_usage = True
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            piece = choice.delta.content if args.api == "chat" else choice.text
            if piece:
                now = time.perf_counter()
                first = first if first is not None else now
                last = now
                chunks += 1
                pieces.append(piece)
        end = time.perf_counter()
    except openai.APIStatusError as err:
        result.error = f"HTTP {err.status_code}: {_message(err)}"
        result.latency_s = time.perf_counter() - start
        return result
    except (openai.APIError, asyncio.TimeoutError) as err:
        result.error = f"{type(err).__name__}: {err}"
        result.latency_s = time.perf_counter() - start
        return result
    finally:
        _TIMING.reset(token)
        result.connect_s = timing.get("connect_s")
    result.text = "".join(pieces)
    result.latency_s = end - start
    if not result.tokens_from_usage:
        result.output_tokens = chunks  # one chunk is one token for NIM's streaming
    if first is None:
        result.error = "the response had no tokens"
        return result
    result.ok = True
    result.ttft_s = first - start
    if result.output_tokens > 1:
        result.itl_s = (last - first) / (result.output_tokens - 1)
    return result


def _message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("message", inner))
        return str(inner)
    return str(body or err.message)


async def warm_pool(client: AsyncOpenAI, http: httpx2.AsyncClient, args: argparse.Namespace, connections: int) -> int:
    """Open `connections` connections and leave them idle in the pool, before the clock starts.

    Each sends a GET to /models and keeps its response unread until all have their headers, so the pool has to
    open one connection per request; then all are read and go back to the pool. Any status will do (only the
    connection matters). Opening them all at the start of the timed run instead is a burst a small accept backlog
    drops SYNs from: those requests wait a SYN retransmission (1 s) and carry it in their TTFT. Returns how many
    connections were held at once (now idle in the pool)."""
    if connections < 1:
        return 0
    barrier = asyncio.Barrier(connections)
    url = f"{str(client.base_url).rstrip('/')}/models"
    headers = {"Authorization": f"Bearer {args.api_key}"}
    held = 0

    async def one() -> None:
        nonlocal held
        response = None
        try:
            response = await http.send(http.build_request("GET", url, headers=headers,
                                                          timeout=min(args.timeout, 30)), stream=True)
            held += 1
        except httpx2.HTTPError:
            pass  # a connection that will not open now would not open for the run either: its requests will say
        finally:
            await barrier.wait()
        if response is not None:
            await response.aread()
            await response.aclose()

    await asyncio.gather(*(one() for _ in range(connections)))
    return held


class Progress:
    """A one-line progress bar on a terminal; silent elsewhere (logs and pipes get the per-request lines)."""

    def __init__(self, total: int | None, stream: TextIO):
        self.total, self.done, self.failed, self.stream = total, 0, 0, stream
        self.enabled = stream.isatty()

    def update(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        self.draw()

    def draw(self) -> None:
        if not self.enabled:
            return
        failed = f'  ({self.failed} failed)' if self.failed else ''
        if self.total is None:  # a duration-based run: no end to show
            self.stream.write(f"\r{self.done} done{failed}")
        else:
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}{failed}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def line_for(result: Result, model: str, label: str = "request") -> str:
    if not result.ok:
        return f"[{model}] {label} {result.request_id}: FAILED after {result.latency_s:.3f} s: {result.error}"
    ttft = f"{result.ttft_s * 1000:.0f} ms"
    itl = f"{result.itl_s * 1000:.1f} ms" if result.itl_s is not None else "n/a"
    connect = f", connected during the run in {result.connect_s * 1000:.0f} ms" if result.connect_s is not None else ""
    return (f"[{model}] {label} {result.request_id}: latency {result.latency_s:.3f} s "
            f"({result.latency_s * 1000:.0f} ms), TTFT {ttft}, ITL {itl}, {result.output_tokens} tokens{connect}")


def met_slo(result: Result, slo: dict[str, float]) -> bool:
    """Succeeded and within every threshold (a one-token answer has no gaps, so no ITL to miss)."""
    measured = {"ttft": result.ttft_s, "itl": result.itl_s, "e2e": result.latency_s}
    return result.ok and all(measured[k] is None or measured[k] <= limit for k, limit in slo.items())


@dataclass
class Level:
    """One run: the load it was under and what came back."""
    concurrency: int | None
    results: list[Result]
    wall: float
    warmup: list[Result]
    connections_warmed: int


def summarize(level: Level, args: argparse.Namespace) -> Summary:
    results, wall = level.results, level.wall
    ok = [r for r in results if r.ok]
    tokens = sum(r.output_tokens for r in ok)
    slo = args.slo or {}
    goodput = None
    if slo:
        met = sum(bool(r.met_slo) for r in results)
        goodput = {"requests": met, "share": met / len(results) if results else 0.0,
                   "per_s": met / wall if wall > 0 else 0.0}
    connects = [r.connect_s for r in results if r.connect_s is not None]
    starts = sorted(r.start_s for r in results)
    achieved = None
    if args.request_rate and len(starts) > 1 and starts[-1] > starts[0]:
        achieved = (len(starts) - 1) / (starts[-1] - starts[0])
    return Summary(
        model=args.model_name, url=args.url, api=args.api, requests=len(results), succeeded=len(ok),
        failed=len(results) - len(ok), concurrency=level.concurrency, wall_time_s=wall,
        requests_per_s=len(ok) / wall if wall > 0 else 0.0, output_tokens=tokens,
        output_tokens_per_s=tokens / wall if wall > 0 else 0.0,
        request_rate=args.request_rate, achieved_rate=achieved, duration_s=args.duration, warmup=len(level.warmup),
        warmup_failed=sum(not r.ok for r in level.warmup), connections_warmed=level.connections_warmed,
        connects_during_run=len(connects),
        latency_s=spread([r.latency_s for r in ok]),
        ttft_s=spread([r.ttft_s for r in ok if r.ttft_s is not None]),
        itl_s=spread([r.itl_s for r in ok if r.itl_s is not None]),
        connect_s=spread(connects), queue_s=spread([r.queue_s for r in results if r.queue_s is not None]),
        slo=slo, goodput=goodput,
        failures=[{"request_id": r.request_id, "warmup": warm, "error": r.error}
                  for warm, group in ((True, level.warmup), (False, results)) for r in group if not r.ok],
    )


def table(s: Summary) -> str:
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 1000:.1f}"

    load = f"{s.concurrency}" if s.concurrency else "uncapped"
    rows = [("requests sent", f"{s.requests}"), ("succeeded", f"{s.succeeded}"), ("failed", f"{s.failed}")]
    if s.request_rate:
        sent = "n/a" if s.achieved_rate is None else f"{s.achieved_rate:.2f}"
        rows += [("request rate (/s)", f"{s.request_rate:g}"), ("achieved rate (/s)", sent)]
    rows += [
        ("concurrency", load), ("warm-up requests", f"{s.warmup}"), ("wall time (s)", f"{s.wall_time_s:.2f}"),
        ("requests/s", f"{s.requests_per_s:.2f}"), ("output tokens", f"{s.output_tokens}"),
        ("output tokens/s", f"{s.output_tokens_per_s:.1f}"),
        ("connections warmed", f"{s.connections_warmed}"), ("connects in the run", f"{s.connects_during_run}"),
    ]
    out = [f"Summary: {s.model} at {s.url} ({s.api})", ""]
    out += [f"  {k:<20} {v:>10}" for k, v in rows]
    out += ["", f"  {'(ms)':<20} {'p50':>10} {'p90':>10} {'p99':>10}"]
    spreads = [("latency", s.latency_s), ("TTFT", s.ttft_s), ("inter-token", s.itl_s)]
    if s.connects_during_run:  # connecting is in those requests' TTFT: shown apart so it can be told from the server
        spreads.append(("connect", s.connect_s))
    if s.request_rate:  # sent past its scheduled time: inside latency and TTFT, shown apart
        spreads.append(("queue delay", s.queue_s))
    notes = []
    if s.connects_during_run and s.connections_warmed:
        notes.append(f"  note: {s.connects_during_run} connections opened during the run, their connect time inside "
                     "TTFT:\n  more were in flight than warmed (raise --connections, or --warmup to size the pool "
                     "from the rate),\n  or the server closed idle ones")
    for label, values in spreads:
        out.append(f"  {label:<20} {ms(values['p50']):>10} {ms(values['p90']):>10} {ms(values['p99']):>10}")
    if s.goodput is not None:
        limits = ", ".join(f"{k} <= {v * 1000:g} ms" for k, v in s.slo.items())
        out += ["", f"  goodput ({limits}): {s.goodput['requests']} of {s.requests} requests "
                    f"({s.goodput['share'] * 100:.1f}%), {s.goodput['per_s']:.2f} requests/s"]
    queued = s.queue_s.get("p90") if s.request_rate else None
    if queued is not None and queued > 1 / s.request_rate:
        cause = "the --concurrency cap held requests back" if s.concurrency else "the client fell behind"
        notes.append(f"  note: {cause} (p90 {queued * 1000:.0f} ms past their "
                     f"scheduled time;\n  sent at {s.achieved_rate or 0:.2f}/s of the {s.request_rate:g}/s asked). "
                     "Latency and TTFT count from the scheduled time, so they include that wait.")
    if notes:
        out += ["", *notes]
    if s.failures:
        out += ["", f"Failures ({len(s.failures)}):"] + [
            f"  {'warm-up' if f['warmup'] else 'request'} {f['request_id']}: {f['error']}" for f in s.failures]
    return "\n".join(out)


async def check_server(client: AsyncOpenAI, args: argparse.Namespace) -> str | None:
    """One clear error when nothing answers at the URL or it refuses the key, instead of one failure per request."""
    try:
        await client.models.list(timeout=min(args.timeout, 10))
    except openai.APIConnectionError as err:
        return (f"cannot reach {args.url}: {err.__cause__ or err}. Is the server up? For NIM on EKS run "
                f"`kubectl -n nim port-forward svc/<nim-llm-model> 8000:8000` first.")
    except openai.APIStatusError as err:
        if err.status_code in (401, 403):  # the gateway answers /models itself, behind the same key check
            return (f"{args.url} refused the API key (HTTP {err.status_code}: {_message(err)}): pass the gateway's "
                    "key with --api-key (`pulumi stack output api_keys_command` prints it)")
        return None  # it answers; some servers do not implement /models
    return None


def rate_connections(rate: float, warmup: list[Result], count: int | None) -> int:
    """Connections to warm for uncapped Poisson arrivals: in flight on average is rate x latency (Little's law), with
    the warm-ups' median latency standing in for the run's; the count in flight is then Poisson, so add three
    standard deviations (sqrt of the mean) and one. Without a successful warm-up, DEFAULT_RATE_CONNECTIONS. Never
    more than the requests to send nor MAX_RATE_CONNECTIONS (a warm-up that waited for a cold start would
    otherwise ask for thousands)."""
    latencies = [r.latency_s for r in warmup if r.ok]
    if latencies:
        mean = rate * percentile(latencies, 50)
        connections = math.ceil(mean + 3 * math.sqrt(mean)) + 1
    else:
        connections = DEFAULT_RATE_CONNECTIONS
    return max(1, min(connections, MAX_RATE_CONNECTIONS, count if count is not None else connections))


async def run_level(client: AsyncOpenAI, http: httpx2.AsyncClient, args: argparse.Namespace, prompts: list[str],
                    concurrency: int | None, first_id: int, out: TextIO, err: TextIO) -> Level:
    """Run the warm-ups, warm the pool, then start the clock and send the measured requests."""
    count = args.iterations if args.iterations is not None else (None if args.duration else len(prompts))
    rate = args.request_rate
    cap = concurrency if (concurrency or rate) else count  # closed loop with no cap: all at once

    def prompt_for(i: int) -> str:  # the warm-ups take the first prompts, the measured requests the next
        return prompts[(args.offset + i) % len(prompts)]

    warmup = []
    if args.warmup:
        gate = asyncio.Semaphore(min(cap or args.warmup, args.warmup))

        async def warm(i: int) -> Result:
            async with gate:
                result = await run_one(client, args, i, prompt_for(i))
            print(line_for(result, args.model_name, "warm-up"), file=out, flush=True)
            return result

        warmup = list(await asyncio.gather(*(warm(i) for i in range(args.warmup))))

    # The pool is warmed after the warm-ups, right before the clock: connections left idle through warm-ups that
    # take longer than a server's keep-alive (NIM's 5 s) would be closed by then and open again inside the run.
    if args.cold_connections:
        connections = 0
    else:
        connections = args.connections or cap or rate_connections(rate, warmup, count)
    warmed = await warm_pool(client, http, args, connections)

    slo = args.slo or {}
    progress = Progress(count, err)
    progress.draw()
    gate = asyncio.Semaphore(cap) if cap else None
    results: list[Result] = []
    clock = time.perf_counter()

    async def one(i: int, scheduled: float | None) -> None:
        prompt = prompt_for(args.warmup + i)
        if gate is None:
            result = await run_one(client, args, first_id + i, prompt, clock, scheduled)
        else:
            async with gate:
                result = await run_one(client, args, first_id + i, prompt, clock, scheduled)
        result.concurrency = cap
        if slo:
            result.met_slo = met_slo(result, slo)
        results.append(result)
        progress.update(result.ok)
        print(line_for(result, args.model_name), file=out, flush=True)
        if args.verbose:
            print(f"  prompt: {result.prompt}\n  response: {result.text}", file=out, flush=True)

    if rate:
        # Open loop: Poisson arrivals, i.e. exponential gaps with mean 1/rate from a seeded generator, so the same
        # seed sends the same schedule. A request is sent at its time whatever is in flight (unless capped).
        rng = random.Random(args.seed or 0)
        tasks, at, i = [], 0.0, 0
        while (count is None or i < count) and (args.duration is None or at < args.duration):
            delay = clock + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, at)))
            i += 1
            at += rng.expovariate(rate)
        await asyncio.gather(*tasks)
    else:
        # Closed loop: `cap` workers, each sends its next request when its last one is done, until the count is
        # reached or the duration is up (then what is in flight finishes).
        issued = 0

        def take() -> int | None:
            nonlocal issued
            if (count is not None and issued >= count) or (
                    args.duration is not None and time.perf_counter() - clock >= args.duration):
                return None
            issued += 1
            return issued - 1

        async def worker() -> None:
            while (i := take()) is not None:
                await one(i, None)

        await asyncio.gather(*(worker() for _ in range(cap)))
    wall = time.perf_counter() - clock
    progress.close()
    return Level(concurrency=cap, results=sorted(results, key=lambda r: r.request_id), wall=wall, warmup=warmup,
                 connections_warmed=warmed)


def sweep_points(summaries: list[Summary]) -> list[dict[str, Any]]:
    def ms(value: float | None) -> float | None:
        return None if value is None else value * 1000

    return [{"concurrency": s.concurrency, "requests": s.requests, "failed": s.failed,
             "requests_per_s": s.requests_per_s, "output_tokens_per_s": s.output_tokens_per_s,
             "ttft_p90_ms": ms(s.ttft_s["p90"]), "itl_p90_ms": ms(s.itl_s["p90"]),
             "goodput_per_s": s.goodput["per_s"] if s.goodput else None} for s in summaries]


def plot_sweep(points: list[dict[str, Any]], path: Path, title: str):
    """Output tokens/s against p90 TTFT and against p90 ITL, one point per concurrency level, as a PNG."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state; only a sweep pays for the import

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    for ax, key, label in zip(fig.subplots(1, 2), ("ttft_p90_ms", "itl_p90_ms"),
                              ("p90 time to first token (ms)", "p90 inter-token latency (ms)")):
        shown = [p for p in points if p[key] is not None]
        ax.plot([p[key] for p in shown], [p["output_tokens_per_s"] for p in shown], marker="o")
        for p in shown:
            ax.annotate(f"c={p['concurrency']}", (p[key], p["output_tokens_per_s"]), textcoords="offset points",
                        xytext=(5, 5), fontsize=8)
        ax.margins(x=0.15, y=0.1)  # room for the labels of the outermost points
        ax.set_xlabel(label)
        ax.set_ylabel("output tokens/s")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    return fig


def sweep_table(points: list[dict[str, Any]]) -> str:
    def num(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    out = [f"  {'concurrency':>11} {'requests/s':>11} {'tokens/s':>10} {'p90 TTFT ms':>12} {'p90 ITL ms':>11}"
           f"{' goodput/s':>11}"]
    out += [f"  {p['concurrency']:>11} {p['requests_per_s']:>11.2f} {p['output_tokens_per_s']:>10.1f} "
            f"{num(p['ttft_p90_ms'], '.1f'):>12} {num(p['itl_p90_ms'], '.2f'):>11} "
            f"{num(p['goodput_per_s'], '.2f'):>10}" for p in points]
    return "\n".join(out)


def request_rows(levels: list[Level]) -> list[dict[str, Any]]:
    return [{k: asdict(r)[k] for k in REQUEST_FIELDS} for level in levels for r in level.results]


def write_requests(levels: list[Level], args: argparse.Namespace) -> None:
    rows = request_rows(levels)
    if args.requests_jsonl:
        Path(args.requests_jsonl).write_text("".join(json.dumps(row) + "\n" for row in rows))
    if args.requests_csv:
        with open(args.requests_csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=REQUEST_FIELDS)
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)


def usage_problem(args: argparse.Namespace) -> str | None:
    if args.sweep_concurrency and args.concurrency:
        return "--sweep-concurrency sets the concurrency of each run: leave out --concurrency"
    if (args.duration and args.iterations is None and not args.request_rate and not args.concurrency
            and not args.sweep_concurrency):
        return "--duration without --iterations needs --concurrency or --request-rate (how much load to keep up)"
    if args.cold_connections and args.connections:
        return "--cold-connections warms no connections: leave out --connections"
    if args.cold_connections and args.warmup:
        return ("--warmup opens connections that the run then reuses, so it would not be cold: leave out --warmup "
                "or --cold-connections")
    if args.plot is not None and not args.sweep_concurrency:
        return "--plot names the plot of a sweep: it needs --sweep-concurrency"
    if args.seed is not None and not args.request_rate:
        return "--seed sets the Poisson arrivals: it needs --request-rate"
    return None


async def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    problem = usage_problem(args)
    if problem:
        print(f"error: {problem}", file=err)
        return 2
    try:
        prompts = read_prompts(args.input_prompts)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    http = http_client()
    client = AsyncOpenAI(base_url=args.url, api_key=args.api_key, max_retries=0, timeout=args.timeout,
                         http_client=http)
    levels: list[Level] = []
    async with client:
        problem = await check_server(client, args)
        if problem:
            print(f"error: {problem}", file=err)
            return 2
        for concurrency in args.sweep_concurrency or [args.concurrency]:
            if args.sweep_concurrency:
                print(f"\n== concurrency {concurrency} ==", file=out, flush=True)
            first_id = sum(len(level.results) for level in levels)  # request ids run on across a sweep
            levels.append(await run_level(client, http, args, prompts, concurrency, first_id, out, err))

    with open(args.results_file, "w") as fh:
        for level in levels:
            for r in level.results:
                fh.write(f"request {r.request_id}\nprompt: {r.prompt}\n")
                fh.write(f"response: {r.text}\n" if r.ok else f"error: {r.error}\n")
                fh.write(f"{SEPARATOR}\n")
    write_requests(levels, args)
    summaries = [summarize(level, args) for level in levels]
    for summary in summaries:
        print("\n" + table(summary), file=out)
    if args.sweep_concurrency:
        points = sweep_points(summaries)
        plot = Path(args.plot or DEFAULT_PLOT)
        plot_sweep(points, plot, f"{args.model_name} at {args.url}")
        beside = plot.with_name(plot.stem + ".points.json")
        beside.write_text(json.dumps(points, indent=2) + "\n")
        print(f"\nSweep ({plot}, points in {beside}):\n{sweep_table(points)}", file=out)
    if args.json:
        data = [asdict(s) for s in summaries] if args.sweep_concurrency else asdict(summaries[0])
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    sent = sum(s.requests + s.warmup for s in summaries)
    failed = sum(s.failed + s.warmup_failed for s in summaries)
    if failed:
        print(f"\nFAILED: {failed} of {sent} requests failed", file=out)
        return 1
    print(f"\nOK: all {sent} requests succeeded", file=out)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m client",
        description="Benchmark an OpenAI-compatible endpoint (NIM): streams every request and reports time to "
                    "first token, inter-token latency, end-to-end latency, throughput and goodput.",
    )
    p.add_argument("-u", "--url", default="http://localhost:8000/v1",
                   help="base URL of the OpenAI-compatible API (default: %(default)s)")
    p.add_argument("--input-prompts", type=Path, default=DEFAULT_PROMPTS,
                   help="file with one prompt per line (default: client/prompts.txt)")
    p.add_argument("--results-file", default="results.txt",
                   help="where every response is written, in request-id order (default: %(default)s)")
    p.add_argument("--iterations", type=_positive, default=None,
                   help="number of requests to measure, cycling through the prompts (default: one per prompt; "
                        "with --duration: no limit)")
    p.add_argument("--offset", type=_non_negative, default=0,
                   help="index of the first prompt to use (default: %(default)s)")
    p.add_argument("--model-name", default="meta/llama3-8b-instruct",
                   help="the model to request, as the server names it (default: %(default)s)")
    p.add_argument("--concurrency", type=_positive, default=None,
                   help="most requests in flight at once (default: all of them at once; with --request-rate: "
                        "no cap)")
    p.add_argument("--request-rate", type=_positive_float, default=None, metavar="R",
                   help="send requests at R per second on average, Poisson arrivals (default: closed loop at "
                        "--concurrency)")
    p.add_argument("--seed", type=int, default=None, help="seed of the Poisson arrivals (default: 0)")
    p.add_argument("--duration", type=_positive_float, default=None, metavar="S",
                   help="stop sending after S seconds, then wait for the requests in flight")
    p.add_argument("--warmup", type=_non_negative, default=0, metavar="N",
                   help="N warm-up requests before the clock starts, left out of every figure (default: 0)")
    p.add_argument("--connections", type=_positive, default=None, metavar="N",
                   help="connections to open and warm before the clock starts (default: the concurrency; with an "
                        "uncapped --request-rate: rate x the warm-ups' median latency plus a Poisson margin, "
                        f"{DEFAULT_RATE_CONNECTIONS} without warm-ups)")
    p.add_argument("--cold-connections", action="store_true",
                   help="do not warm the pool: connections open inside the timed run (to measure that on purpose)")
    p.add_argument("--slo", type=_slo, default=None, metavar="ttft=S,itl=S,e2e=S",
                   help="report goodput: the share and rate of requests within every threshold (seconds)")
    p.add_argument("--sweep-concurrency", type=_levels, default=None, metavar="1,2,4,8",
                   help="run once per concurrency level and plot output tokens/s against p90 TTFT and ITL")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help=f"the sweep's PNG (default: {DEFAULT_PLOT}; its points beside it in FILE-stem.points.json)")
    p.add_argument("--requests-csv", metavar="FILE", help="write one CSV row per measured request")
    p.add_argument("--requests-jsonl", metavar="FILE", help="write one JSON line per measured request")
    p.add_argument("--max-tokens", type=_positive, default=256, help="most tokens per response (default: %(default)s)")
    p.add_argument("--api", choices=("chat", "completions"), default="chat",
                   help="/v1/chat/completions or /v1/completions (default: %(default)s)")
    p.add_argument("--timeout", type=_positive_float, default=300.0, help="seconds per request (default: %(default)s)")
    p.add_argument("--json", metavar="FILE",
                   help="also write a machine-readable summary to FILE (a list of them for a sweep)")
    p.add_argument("--api-key", default="not-needed", help="API key, if the server wants one: the gateway's "
                   "(`pulumi stack output api_keys_command`); NIM itself wants none")
    p.add_argument("-v", "--verbose", action="store_true", help="print each prompt and response as well")
    return p


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError("must be a number above 0")
    return value


def _slo(text: str) -> dict[str, float]:
    limits = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key.strip() not in SLO_KEYS:
            raise argparse.ArgumentTypeError(f"{key.strip()!r}: thresholds are {', '.join(SLO_KEYS)} (seconds)")
        try:
            limits[key.strip()] = _positive_float(value)
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"{part!r}: a threshold is a number of seconds above 0") from None
    return limits


def _levels(text: str) -> list[int]:
    try:
        return [_positive(part) for part in text.split(",")]
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError("a comma-separated list of concurrencies, each at least 1") from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
