"""What key governance costs per request: authentication, scope, rate limits, budget, audit.

Runs the exact calls the edge makes for one chat request (``authenticate``, the scope check,
``Limits.admit``, the record fed by the stream, ``Recorder.request``) on a real SQLite store, in
this process, and times them; the batched write is timed apart and spread over the requests it
carries. The figure is printed beside one whole request's latency from scenario (a) of the same
run, direct and through llmtunnel.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from edge import credentials
from edge.audit import RequestRecord
from edge.auth import RECORD, authenticate
from edge.config import EdgeConfig
from edge.context import CONTEXT, open_context
from edge.store import KeyLimits
from protocol import Delta, End
from protocol.requests import ChatRequest, Message, Options

MODEL = "llama3.2:3b"
TOKENS = 32  # deltas observed per request, as in scenario (a)
FLUSH_EVERY = 500  # requests per batched write (a busy second)


def _neutral() -> ChatRequest:
    message = Message("user", "Tell me about tunnels tokens=32")
    return ChatRequest(MODEL, (message,), options=Options(num_predict=64))


async def measure(iterations: int) -> dict[str, float]:
    """Per-request microseconds: p50/p99 for a key with every limit and for a plain key, and
    the batched write's share."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx = await open_context(EdgeConfig(domain="bench.test", data_dir=Path(tmp)))
        app = web.Application()
        app[CONTEXT] = ctx
        await ctx.store.tenants.create("t1", "bench")
        secrets = {}
        every_limit = KeyLimits((MODEL,), 10**12, "day", 10**9, 10**12, None)
        for name, limits in (("limited", every_limit), ("plain", KeyLimits())):
            secret = credentials.new_api_key()
            await ctx.store.keys.add(
                credentials.new_id("k"),
                "t1",
                name,
                credentials.visible_prefix(secret),
                ctx.hasher.digest(secret),
                None,
                limits,
            )
            secrets[name] = secret
        figures: dict[str, float] = {}
        for name, secret in secrets.items():
            headers = {
                "Authorization": f"Bearer {secret}",
                "Host": "bench.bench.test",
                "User-Agent": "bench/1",
            }
            # One request object reused: aiohttp's mocked request builds mocks lazily on first
            # use, a cost the real server does not have, which would swamp the figure.
            request = make_mocked_request("POST", "/v1/chat/completions", headers=headers, app=app)
            delta, end = Delta(1, "tok ", "", []), End(1, "stop", 12, TOKENS, {})
            samples: list[float] = []
            flush_total = 0.0
            for i in range(iterations):
                neutral = _neutral()
                started = time.perf_counter()
                record = RequestRecord("POST /v1/chat/completions", "127.0.0.1", "bench/1")
                request[RECORD] = record
                caller = await authenticate(request)
                caller.ensure_model_allowed(MODEL)
                record.model = MODEL
                admission = await ctx.limits.admit(caller.key, neutral, time.time())
                record.admission = admission
                record.dispatch("gpu-1", admission.prompt_estimate)
                for _ in range(TOKENS):
                    record.observe(delta)
                record.observe(end)
                admission.settle(sum(record.tokens_used()))
                ctx.recorder.request(record, 200)
                samples.append(time.perf_counter() - started)
                if (i + 1) % FLUSH_EVERY == 0:
                    flushed = time.perf_counter()
                    await ctx.recorder.flush()
                    flush_total += time.perf_counter() - flushed
            samples.sort()
            figures[f"{name}_p50"] = statistics.median(samples) * 1e6
            figures[f"{name}_p99"] = samples[int(0.99 * len(samples))] * 1e6
            figures[f"{name}_flush"] = flush_total / iterations * 1e6
        await ctx.store.close()
        return figures


def report(figures: dict[str, float], direct_p50: float | None, tunnel_p50: float | None) -> None:
    print("\n(f) key governance per request (auth + scope + RPM/TPM + budget + audit), in-process")
    for name, label in (("limited", "key with every limit"), ("plain", "key without limits")):
        p50, p99, flush = (figures[f"{name}_{k}"] for k in ("p50", "p99", "flush"))
        print(
            f"    {label:22s} p50 {p50:6.1f} µs   p99 {p99:6.1f} µs"
            f"   + batched write {flush:4.1f} µs/request   = {p50 + flush:6.1f} µs"
        )
    total = figures["limited_p50"] + figures["limited_flush"]
    if direct_p50 and tunnel_p50:
        print(
            f"    a whole request (a): direct {direct_p50 * 1e3:.2f} ms, llmtunnel "
            f"{tunnel_p50 * 1e3:.2f} ms; governance adds {total / 1e3:.3f} ms = "
            f"{total / 1e6 / direct_p50:.1%} of the direct request (goal ≤ 0.2 ms)"
        )
