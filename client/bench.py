"""Benchmark client for OpenAI-compatible endpoints (NIM through `kubectl port-forward`).

Streams every request and measures, per request, time to first token (TTFT), inter-token latency (ITL: the mean
gap between output tokens after the first), end-to-end latency and output tokens; then prints a summary with
p50/p90/p99. Exit status 0 only when every request succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import openai
from openai import AsyncOpenAI

DEFAULT_PROMPTS = Path(__file__).resolve().parent / "prompts.txt"
SEPARATOR = "========="


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


@dataclass
class Summary:
    model: str
    url: str
    api: str
    requests: int
    succeeded: int
    failed: int
    concurrency: int
    wall_time_s: float
    requests_per_s: float
    output_tokens: int
    output_tokens_per_s: float
    latency_s: dict[str, float | None] = field(default_factory=dict)
    ttft_s: dict[str, float | None] = field(default_factory=dict)
    itl_s: dict[str, float | None] = field(default_factory=dict)
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


def load_prompts(path: Path, iterations: int | None, offset: int) -> list[str]:
    """`iterations` prompts starting at `offset`, wrapping around the file (default: each prompt once)."""
    prompts = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"{path} has no prompts")
    count = iterations if iterations is not None else len(prompts)
    return [prompts[(offset + i) % len(prompts)] for i in range(count)]


async def run_one(client: AsyncOpenAI, args: argparse.Namespace, request_id: int, prompt: str) -> Result:
    result = Result(request_id=request_id, prompt=prompt)
    pieces: list[str] = []
    chunks = 0
    first = last = None
    start = time.perf_counter()
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


class Progress:
    """A one-line progress bar on a terminal; silent elsewhere (logs and pipes get the per-request lines)."""

    def __init__(self, total: int, stream: TextIO):
        self.total, self.done, self.failed, self.stream = total, 0, 0, stream
        self.enabled = stream.isatty()

    def update(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        self.draw()

    def draw(self) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
                          f"{f'  ({self.failed} failed)' if self.failed else ''}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def line_for(result: Result, model: str) -> str:
    if not result.ok:
        return f"[{model}] request {result.request_id}: FAILED after {result.latency_s:.3f} s: {result.error}"
    ttft = f"{result.ttft_s * 1000:.0f} ms"
    itl = f"{result.itl_s * 1000:.1f} ms" if result.itl_s is not None else "n/a"
    return (f"[{model}] request {result.request_id}: latency {result.latency_s:.3f} s "
            f"({result.latency_s * 1000:.0f} ms), TTFT {ttft}, ITL {itl}, {result.output_tokens} tokens")


def summarize(results: list[Result], args: argparse.Namespace, wall: float, concurrency: int) -> Summary:
    ok = [r for r in results if r.ok]
    tokens = sum(r.output_tokens for r in ok)
    return Summary(
        model=args.model_name, url=args.url, api=args.api, requests=len(results), succeeded=len(ok),
        failed=len(results) - len(ok), concurrency=concurrency, wall_time_s=wall,
        requests_per_s=len(ok) / wall if wall > 0 else 0.0, output_tokens=tokens,
        output_tokens_per_s=tokens / wall if wall > 0 else 0.0,
        latency_s=spread([r.latency_s for r in ok]),
        ttft_s=spread([r.ttft_s for r in ok if r.ttft_s is not None]),
        itl_s=spread([r.itl_s for r in ok if r.itl_s is not None]),
        failures=[{"request_id": r.request_id, "error": r.error} for r in results if not r.ok],
    )


def table(s: Summary) -> str:
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 1000:.1f}"

    rows = [
        ("requests sent", f"{s.requests}"), ("succeeded", f"{s.succeeded}"), ("failed", f"{s.failed}"),
        ("concurrency", f"{s.concurrency}"), ("wall time (s)", f"{s.wall_time_s:.2f}"),
        ("requests/s", f"{s.requests_per_s:.2f}"), ("output tokens", f"{s.output_tokens}"),
        ("output tokens/s", f"{s.output_tokens_per_s:.1f}"),
    ]
    out = [f"Summary: {s.model} at {s.url} ({s.api})", ""]
    out += [f"  {k:<18} {v:>10}" for k, v in rows]
    out += ["", f"  {'(ms)':<18} {'p50':>10} {'p90':>10} {'p99':>10}"]
    for label, values in (("latency", s.latency_s), ("TTFT", s.ttft_s), ("inter-token", s.itl_s)):
        out.append(f"  {label:<18} {ms(values['p50']):>10} {ms(values['p90']):>10} {ms(values['p99']):>10}")
    if s.failures:
        out += ["", f"Failures ({len(s.failures)}):"] + [f"  request {f['request_id']}: {f['error']}"
                                                         for f in s.failures]
    return "\n".join(out)


async def check_server(client: AsyncOpenAI, args: argparse.Namespace) -> str | None:
    """One clear error when nothing answers at the URL, instead of one failure per request."""
    try:
        await client.models.list(timeout=min(args.timeout, 10))
    except openai.APIConnectionError as err:
        return (f"cannot reach {args.url}: {err.__cause__ or err}. Is the server up? For NIM on EKS run "
                f"`kubectl -n nim port-forward svc/<nim-llm-model> 8000:8000` first.")
    except openai.APIStatusError:
        return None  # it answers; some servers do not implement /models
    return None


async def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        prompts = load_prompts(args.input_prompts, args.iterations, args.offset)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    concurrency = args.concurrency or len(prompts)
    client = AsyncOpenAI(base_url=args.url, api_key=args.api_key, max_retries=0, timeout=args.timeout)
    async with client:
        problem = await check_server(client, args)
        if problem:
            print(f"error: {problem}", file=err)
            return 2
        gate = asyncio.Semaphore(concurrency)
        progress = Progress(len(prompts), err)
        progress.draw()

        async def limited(i: int, prompt: str) -> Result:
            async with gate:
                result = await run_one(client, args, i, prompt)
            progress.update(result.ok)
            print(line_for(result, args.model_name), file=out, flush=True)
            if args.verbose:
                print(f"  prompt: {result.prompt}\n  response: {result.text}", file=out, flush=True)
            return result

        start = time.perf_counter()
        results = await asyncio.gather(*(limited(i, p) for i, p in enumerate(prompts)))
        wall = time.perf_counter() - start
        progress.close()

    results = sorted(results, key=lambda r: r.request_id)
    with open(args.results_file, "w") as fh:
        for r in results:
            fh.write(f"request {r.request_id}\nprompt: {r.prompt}\n")
            fh.write(f"response: {r.text}\n" if r.ok else f"error: {r.error}\n")
            fh.write(f"{SEPARATOR}\n")
    summary = summarize(results, args, wall, concurrency)
    print("\n" + table(summary), file=out)
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(summary), indent=2) + "\n")
    if summary.failed:
        print(f"\nFAILED: {summary.failed} of {summary.requests} requests failed", file=out)
        return 1
    print(f"\nOK: all {summary.requests} requests succeeded", file=out)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m client",
        description="Benchmark an OpenAI-compatible endpoint (NIM): streams every request and reports time to "
                    "first token, inter-token latency, end-to-end latency and throughput.",
    )
    p.add_argument("-u", "--url", default="http://localhost:8000/v1",
                   help="base URL of the OpenAI-compatible API (default: %(default)s)")
    p.add_argument("--input-prompts", type=Path, default=DEFAULT_PROMPTS,
                   help="file with one prompt per line (default: client/prompts.txt)")
    p.add_argument("--results-file", default="results.txt",
                   help="where every response is written, in request-id order (default: %(default)s)")
    p.add_argument("--iterations", type=_positive, default=None,
                   help="number of requests to send, cycling through the prompts (default: one per prompt)")
    p.add_argument("--offset", type=_non_negative, default=0,
                   help="index of the first prompt to use (default: %(default)s)")
    p.add_argument("--model-name", default="meta/llama3-8b-instruct",
                   help="the model to request, as the server names it (default: %(default)s)")
    p.add_argument("--concurrency", type=_positive, default=None,
                   help="most requests in flight at once (default: all of them at once)")
    p.add_argument("--max-tokens", type=_positive, default=256, help="most tokens per response (default: %(default)s)")
    p.add_argument("--api", choices=("chat", "completions"), default="chat",
                   help="/v1/chat/completions or /v1/completions (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request (default: %(default)s)")
    p.add_argument("--json", metavar="FILE", help="also write a machine-readable summary to FILE")
    p.add_argument("--api-key", default="not-needed", help="API key, if the server wants one: the gateway's (`pulumi stack output api_keys_command`); NIM itself "
                        "wants none")
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


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
