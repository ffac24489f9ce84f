"""``llmtunnel demo``: the whole path on loopback, set up the way a real deployment is.

A (simulated, unless a real one answers) Ollama, an edge with a self-signed CA, a tenant, a
machine paired through the real pairing flow, an agent dialing in over TLS, and an API key. Then
it prints what a client needs and serves until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import ssl
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from agent import config as agent_config
from agent.ollama import OllamaBackend
from agent.pairing import pair
from agent.runner import RunOptions, run_agent
from edge.config import EdgeConfig
from edge.server import start_edge
from edge.tls import CertificateReloader, ensure_self_signed
from llmtunnel import sim_ollama

REAL_OLLAMA = "http://127.0.0.1:11434"
TOOLS_MODEL = "qwen3:8b"  # the simulator's model with tools and thinking, as Claude Code needs
TENANT = "demo"


async def _real_ollama_answers() -> bool:
    try:
        async with httpx.AsyncClient(timeout=0.5) as http:
            return (await http.get(REAL_OLLAMA + "/api/version")).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.asynccontextmanager
async def _ollama(
    simulated: tuple[float, int], force_simulator: bool
) -> AsyncIterator[tuple[str, str]]:
    if not force_simulator and await _real_ollama_answers():
        yield REAL_OLLAMA, "your Ollama"
        return
    tokens_per_second, context_length = simulated
    config = sim_ollama.SimConfig(
        tokens_per_second=tokens_per_second, context_length=context_length
    )
    runner = await sim_ollama.serve("127.0.0.1", 0, config)
    try:
        url = f"http://127.0.0.1:{sim_ollama.bound_port(runner)}"
        yield url, f"simulated Ollama at {url}"
    finally:
        await runner.cleanup()


async def run_demo(
    port: int,
    tokens_per_second: float,
    context_length: int = 65536,
    *,
    force_simulator: bool = False,
) -> None:
    with tempfile.TemporaryDirectory(prefix="llmtunnel-demo-") as tmp:
        data_dir = Path(tmp)
        bundle = ensure_self_signed(data_dir / "tls", "localhost")
        reloader = CertificateReloader(bundle.cert, bundle.key)
        config = EdgeConfig(
            domain="localhost",
            data_dir=data_dir / "edge",
            public_port=port,
            agent_ca_file=bundle.ca_cert,
        )
        simulated = (tokens_per_second, context_length)
        async with _ollama(simulated, force_simulator) as (ollama_url, ollama_label):
            edge = await start_edge(config, "127.0.0.1", port, reloader.context)
            agent_task: asyncio.Task[None] | None = None
            try:
                edge_url = f"https://localhost:{edge.port}"
                ca = str(bundle.ca_cert)
                assert edge.admin_key_path is not None  # a fresh data dir always makes one
                admin_key = (await asyncio.to_thread(edge.admin_key_path.read_text)).strip()
                key, code = await _provision(edge_url, ca, admin_key)
                settings = await pair(code, edge_url, ca)
                agent_config.save(settings, data_dir / "agent.json")
                options = RunOptions(max_concurrency=8)
                backend = OllamaBackend(ollama_url, options.max_concurrency)
                agent_task = asyncio.create_task(run_agent(settings, backend, options))
                model = await _wait_for_model(edge_url, ca, key)
                _print_instructions(edge_url, ca, key, model, ollama_label, admin_key)
                await asyncio.Event().wait()
            finally:
                if agent_task is not None:
                    agent_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await agent_task
                    await backend.aclose()
                await edge.stop()


async def _provision(edge_url: str, ca: str, admin_key: str) -> tuple[str, str]:
    """Tenant, API key and pairing code through the admin API, as an operator would."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(
        base_url=edge_url + "/admin/v1",
        headers=headers,
        verify=ssl.create_default_context(cafile=ca),
    ) as http:
        (await http.post("/tenants", json={"slug": TENANT})).raise_for_status()
        created = await http.post(f"/tenants/{TENANT}/keys", json={"name": "demo"})
        created.raise_for_status()
        pairing = await http.post(f"/tenants/{TENANT}/machines/pair", json={"name": "gpu-1"})
        pairing.raise_for_status()
    return created.json()["secret"], pairing.json()["code"]


async def _wait_for_model(edge_url: str, ca: str, key: str) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    verify = ssl.create_default_context(cafile=ca)
    async with httpx.AsyncClient(headers=headers, verify=verify) as http, asyncio.timeout(30):
        while True:
            models = (await http.get(edge_url + "/v1/models")).json()["data"]
            chat: list[str] = [m["id"] for m in models if "embed" not in m["id"]]
            if chat:
                return chat[0]
            await asyncio.sleep(0.1)


def _print_instructions(
    edge_url: str, ca: str, key: str, model: str, ollama_label: str, admin_key: str
) -> None:
    base = f"{edge_url}/v1"
    body = (
        f'{{"model": "{model}", "stream": true, '
        '"messages": [{"role": "user", "content": "Say hello through the tunnel"}]}'
    )
    print(
        f"""
llmtunnel demo is running: edge on {edge_url}, one agent paired as {TENANT}/gpu-1, {ollama_label}.

  base URL  {base}
  API key   {key}
  CA        {ca}   (self-signed for this demo)

  console   {edge_url}/console/   (your browser will warn about the demo's CA)
  sign in   {admin_key}   (the operator key)

Stream a chat completion with curl:

  curl -N --cacert {shlex.quote(ca)} {base}/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{body}'

Or with the OpenAI Python SDK:

  import openai, ssl
  tls = ssl.create_default_context(cafile="{ca}")
  client = openai.OpenAI(base_url="{base}", api_key="{key}",
                         http_client=openai.DefaultHttpxClient(verify=tls))
  stream = client.chat.completions.create(
      model="{model}", stream=True, messages=[{{"role": "user", "content": "Say hello"}}])
  for chunk in stream:
      if chunk.choices:
          print(chunk.choices[0].delta.content or "", end="", flush=True)

Or Claude Code (a Node program: it trusts the CA through NODE_EXTRA_CA_CERTS):

  NODE_EXTRA_CA_CERTS={shlex.quote(ca)} ANTHROPIC_BASE_URL={edge_url} \\
    ANTHROPIC_AUTH_TOKEN={key} ANTHROPIC_MODEL={TOOLS_MODEL} \\
    ANTHROPIC_DEFAULT_HAIKU_MODEL={TOOLS_MODEL} claude

Press Ctrl-C to stop.""",
        flush=True,
    )
