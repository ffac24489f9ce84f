"""The command line as an operator and a GPU-box owner use it: real processes, real TLS.

Also the hardest fault: the agent process is SIGKILLed in the middle of a stream.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e

LLMTUNNEL = [sys.executable, "-m", "llmtunnel"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_http(url: str, ca: str | None = None, timeout: float = 20) -> None:
    verify = ssl.create_default_context(cafile=ca) if ca else True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, verify=verify, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not come up within {timeout} s")


class Processes:
    def __init__(self) -> None:
        self.running: list[subprocess.Popen[str]] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [*LLMTUNNEL, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.running.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in self.running:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes() -> Iterator[Processes]:
    running = Processes()
    try:
        yield running
    finally:
        running.stop_all()


def run(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [*LLMTUNNEL, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def status_of(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LLMTUNNEL, "agent", "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_operator_and_gpu_box_walkthrough(tmp_path: Path, processes: Processes) -> None:
    ollama_port, edge_port = _free_port(), _free_port()
    processes.start("sim-ollama", "--port", str(ollama_port), "--tokens-per-second", "200")
    data_dir = tmp_path / "edge"
    processes.start(
        "edge", "serve", "--domain", "example.test", "--listen", f"127.0.0.1:{edge_port}",
        "--data-dir", str(data_dir), "--self-signed",
    )  # fmt: skip
    ca = str(data_dir / "tls" / "ca.pem")
    edge_url = f"https://localhost:{edge_port}"
    _wait_http(f"http://127.0.0.1:{ollama_port}/api/version")
    deadline = time.monotonic() + 20
    while not Path(ca).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    _wait_http(edge_url + "/healthz", ca)

    admin_key_file = data_dir / "admin.key"
    assert admin_key_file.stat().st_mode & 0o777 == 0o600
    env = {
        "LLMTUNNEL_EDGE_URL": edge_url,
        "LLMTUNNEL_ADMIN_KEY": admin_key_file.read_text().strip(),
        "LLMTUNNEL_CA_FILE": ca,
    }
    tenant = json.loads(run("admin", "tenant", "create", "acme", "--json", env=env))
    assert tenant["api_base"] == f"https://acme.example.test:{edge_port}/v1"
    pairing = json.loads(
        run("admin", "machine", "pair", "acme", "--name", "gpu-1", "--json", env=env)
    )
    assert pairing["agent_command"].startswith(f"llmtunnel agent pair {pairing['code']} --edge")
    key = json.loads(run("admin", "key", "create", "acme", "--name", "laptop", "--json", env=env))
    assert key["secret"].startswith("sk-lt-")
    listed = run("admin", "key", "list", "acme", env=env)
    assert "laptop" in listed and key["secret"] not in listed

    agent_config = tmp_path / "agent.json"
    out = run(
        "agent", "pair", pairing["code"], "--edge", edge_url, "--ca-file", ca,
        "--config", str(agent_config), env={},
    )  # fmt: skip
    assert "paired as acme/gpu-1" in out
    assert agent_config.stat().st_mode & 0o777 == 0o600
    agent = processes.start(
        "agent", "run", "--config", str(agent_config),
        "--ollama", f"http://127.0.0.1:{ollama_port}",
    )  # fmt: skip

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        machines = json.loads(run("admin", "machine", "list", "acme", "--json", env=env))
        if machines["machines"][0]["online"]:
            break
        time.sleep(0.1)
    assert machines["machines"][0]["online"]

    # agent status: all is well (exit 0), and its probe leaves the running agent connected;
    # an Ollama that does not answer is exit 1.
    status = run(
        "agent", "status", "--config", str(agent_config),
        "--ollama", f"http://127.0.0.1:{ollama_port}", env={},
    )  # fmt: skip
    assert "this machine is accepted" in status
    assert f"backend:  ollama http://127.0.0.1:{ollama_port} answers, 5 models" in status
    assert "qwen3:8b  completion, tools, thinking; context 40960" in status
    machines = json.loads(run("admin", "machine", "list", "acme", "--json", env=env))
    assert machines["machines"][0]["online"]
    down = status_of("--config", str(agent_config), "--ollama", f"http://127.0.0.1:{_free_port()}")
    assert down.returncode == 1 and "NOT answering: cannot reach Ollama" in down.stdout

    client = openai.OpenAI(
        base_url=edge_url + "/v1",
        api_key=key["secret"],
        max_retries=0,
        timeout=20,
        http_client=openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=ca)),
    )
    reply = client.chat.completions.create(
        model="llama3.2:3b", messages=[{"role": "user", "content": "hello tokens=4"}]
    )
    assert reply.usage is not None and reply.usage.completion_tokens == 4

    # SIGTERM drains: the running stream finishes whole, then the agent exits cleanly.
    draining = client.chat.completions.create(
        model="llama3.2:3b",
        messages=[{"role": "user", "content": "drain tokens=100"}],
        stream=True,
    )
    text = ""
    signalled = False
    for chunk in draining:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if text and not signalled:
            agent.send_signal(signal.SIGTERM)  # once: a second SIGTERM means "quit now"
            signalled = True
    assert len(text.split()) == 100
    assert agent.wait(timeout=15) == 0
    agent = processes.start(
        "agent", "run", "--config", str(agent_config),
        "--ollama", f"http://127.0.0.1:{ollama_port}",
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        machines = json.loads(run("admin", "machine", "list", "acme", "--json", env=env))
        if machines["machines"][0]["online"]:
            break
        time.sleep(0.1)

    # SIGKILL the agent in the middle of a stream: the client gets an error, not a hang.
    stream = client.chat.completions.create(
        model="llama3.2:3b",
        messages=[{"role": "user", "content": "long tokens=100000"}],
        stream=True,
    )
    started = time.monotonic()
    seen = 0
    with pytest.raises(openai.APIError, match="disconnected"):
        for _chunk in stream:
            seen += 1
            if seen == 3:
                os.kill(agent.pid, signal.SIGKILL)
    assert seen >= 3
    assert time.monotonic() - started < 15

    run("admin", "machine", "revoke", "acme", "gpu-1", env=env)
    machines = json.loads(run("admin", "machine", "list", "acme", "--json", env=env))
    assert machines["machines"] == []
    revoked = status_of(
        "--config", str(agent_config), "--ollama", f"http://127.0.0.1:{ollama_port}"
    )
    assert revoked.returncode == 1 and "REFUSES this machine" in revoked.stdout
    assert "agent pair" in revoked.stdout


def test_edge_serve_refuses_to_guess_the_tls_mode(tmp_path: Path) -> None:
    done = subprocess.run(
        [*LLMTUNNEL, "edge", "serve", "--domain", "example.test", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "--self-signed" in done.stderr and "--plain-http" in done.stderr


def test_demo_serves_what_it_prints_and_stops_on_ctrl_c(processes: Processes) -> None:
    port = _free_port()
    demo = processes.start("demo", "--port", str(port), "--simulate", "--tokens-per-second", "0")
    assert demo.stdout is not None
    printed: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "Press Ctrl-C to stop." not in printed:
        printed.append(demo.stdout.readline().strip())
    fields = dict(
        line.split(None, 1) for line in printed if line.startswith(("base URL", "API", "CA"))
    )
    base_url = next(line.split()[-1] for line in printed if line.startswith("base URL"))
    key = fields["API"].split()[-1]
    ca = fields["CA"].split()[0]
    assert base_url == f"https://localhost:{port}/v1"
    assert any(line.startswith("curl -N --cacert") for line in printed)

    client = openai.OpenAI(
        base_url=base_url,
        api_key=key,
        max_retries=0,
        timeout=20,
        http_client=openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=ca)),
    )
    model = client.models.list().data[0].id
    stream = client.chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": "hello tokens=5"}]
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert len(text.split()) == 5

    demo.send_signal(signal.SIGINT)
    assert demo.wait(timeout=15) == 0
    assert not Path(ca).exists()  # the throw-away CA and data went with it


def test_key_governance_from_the_cli_and_kill_9_loses_at_most_one_flush(
    tmp_path: Path, processes: Processes
) -> None:
    edge_port = _free_port()
    data_dir = tmp_path / "edge"
    edge = processes.start(
        "edge", "serve", "--domain", "example.test", "--listen", f"127.0.0.1:{edge_port}",
        "--data-dir", str(data_dir), "--plain-http", "--audit-flush-seconds", "1",
    )  # fmt: skip
    edge_url = f"http://127.0.0.1:{edge_port}"
    _wait_http(edge_url + "/healthz")
    env = {
        "LLMTUNNEL_EDGE_URL": edge_url,
        "LLMTUNNEL_ADMIN_KEY": (data_dir / "admin.key").read_text().strip(),
    }
    run("admin", "tenant", "create", "acme", env=env)
    created = json.loads(
        run(
            "admin", "key", "create", "acme", "--name", "ci", "--models", "qwen3:8b,llama3.2:3b",
            "--budget-tokens", "200000", "--budget-period", "day", "--rpm", "60",
            "--tpm", "100000", "--expires", "30d", "--json", env=env,
        )
    )  # fmt: skip
    listed = run("admin", "key", "list", "acme", env=env)
    assert "qwen3:8b,llama3.2:3b" in listed
    assert "200,000 tok/day, 60 rpm, 100,000 tpm" in listed
    assert created["secret"] not in listed
    rotated = run("admin", "key", "rotate", "acme", "ci", "--grace", "1h", env=env)
    assert "the old secret works until" in rotated
    tenant_admin = json.loads(
        run("admin", "admin-key", "create", "acme", "--name", "alice", "--json", env=env)
    )
    assert tenant_admin["secret"] != env["LLMTUNNEL_ADMIN_KEY"]

    # No machine is online: each request is refused with 503, and still audited.
    client = openai.OpenAI(base_url=edge_url + "/v1", api_key=created["secret"], max_retries=0)
    for _ in range(5):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="llama3.2:3b", messages=[{"role": "user", "content": "hi"}]
            )
    audit = run("admin", "audit", "acme", "--since", "1d", env=env)
    assert "503 no_machine_online" in audit and "key.rotated" in audit
    usage = json.loads(run("admin", "usage", "acme", "--key", "ci", "--json", env=env))
    assert [row["requests"] for row in usage["usage"]] == [5]

    # Five more, then wait past one flush interval, then kill -9: all ten must be on disk.
    for _ in range(5):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="llama3.2:3b", messages=[{"role": "user", "content": "hi"}]
            )
    time.sleep(3)  # past one flush interval, with room for a slow machine
    edge.kill()
    edge.wait(timeout=10)
    db = sqlite3.connect(data_dir / "edge.db")
    (requests,) = db.execute("SELECT COUNT(*) FROM audit_events WHERE kind = 'request'").fetchone()
    (counted,) = db.execute("SELECT SUM(requests) FROM usage_daily").fetchone()
    db.close()
    assert requests == counted == 10


def test_edge_serve_with_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *LLMTUNNEL, "edge", "serve", "--domain", "example.test", "--plain-http",
            "--listen", f"127.0.0.1:{_free_port()}", "--data-dir", str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "LLMTUNNEL_DATABASE_URL": f"postgresql://edge:hunter2@127.0.0.1:{_free_port()}/edge",
        },
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert "hunter2" not in done.stderr and "127.0.0.1" in done.stderr


HUMAN_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def _json_logs(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """A stopped process's log, each line an object; what it printed for people is skipped."""
    assert process.stdout is not None
    lines = process.stdout.read().splitlines()
    assert not [line for line in lines if HUMAN_LOG_LINE.match(line)], "\n".join(lines)
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_edge_and_agent_follow_one_request_in_json_logs_and_serve_metrics(
    tmp_path: Path, processes: Processes
) -> None:
    ollama_port, edge_port, edge_metrics, agent_metrics = (_free_port() for _ in range(4))
    processes.start("sim-ollama", "--port", str(ollama_port))
    data_dir = tmp_path / "edge"
    edge = processes.start(
        "edge", "serve", "--domain", "example.test", "--listen", f"127.0.0.1:{edge_port}",
        "--data-dir", str(data_dir), "--plain-http", "--log-format", "json",
        "--metrics-listen", f"127.0.0.1:{edge_metrics}",
    )  # fmt: skip
    edge_url = f"http://127.0.0.1:{edge_port}"
    _wait_http(edge_url + "/healthz")
    _wait_http(f"http://127.0.0.1:{ollama_port}/api/version")
    env = {
        "LLMTUNNEL_EDGE_URL": edge_url,
        "LLMTUNNEL_ADMIN_KEY": (data_dir / "admin.key").read_text().strip(),
    }
    run("admin", "tenant", "create", "acme", env=env)
    code = json.loads(run("admin", "machine", "pair", "acme", "--name", "gpu-1", "--json", env=env))
    secret = json.loads(run("admin", "key", "create", "acme", "--name", "ci", "--json", env=env))
    agent_config = tmp_path / "agent.json"
    run("agent", "pair", code["code"], "--edge", edge_url, "--config", str(agent_config), env={})
    agent = processes.start(
        "agent", "run", "--config", str(agent_config), "--ollama", f"127.0.0.1:{ollama_port}",
        "--log-format", "json", "--metrics-listen", f"127.0.0.1:{agent_metrics}",
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if json.loads(run("admin", "machine", "list", "acme", "--json", env=env))["machines"][0][
            "online"
        ]:
            break
        time.sleep(0.1)

    client = openai.OpenAI(base_url=edge_url + "/v1", api_key=secret["secret"], max_retries=0)
    served = client.chat.completions.with_raw_response.create(
        model="llama3.2:3b", messages=[{"role": "user", "content": "hi tokens=2"}]
    )
    served_id = served.headers["x-request-id"]
    with pytest.raises(openai.BadRequestError) as refused:  # Ollama refuses it, on the agent
        client.chat.completions.create(
            model="tinyllama:1.1b", messages=[{"role": "user", "content": "word " * 3000}]
        )
    refused_id = refused.value.request_id
    assert refused_id is not None
    edge_scrape = httpx.get(f"http://127.0.0.1:{edge_metrics}/metrics").text
    assert 'llmtunnel_edge_requests_total{endpoint="POST /v1/chat/completions",' in edge_scrape
    agent_scrape = httpx.get(f"http://127.0.0.1:{agent_metrics}/metrics").text
    assert 'llmtunnel_agent_streams_total{op="chat",outcome="end"} 1.0' in agent_scrape
    audit = run("admin", "audit", "acme", env=env)
    assert served_id in audit and refused_id in audit

    processes.stop_all()
    edge_log, agent_log = _json_logs(edge), _json_logs(agent)
    access = {e["request_id"]: e for e in edge_log if e["logger"] == "edge.access"}
    assert access[served_id]["machine"] == "gpu-1" and access[served_id]["tenant"] == "acme"
    assert "200" in access[served_id]["message"] and "400" in access[refused_id]["message"]
    (failed,) = [e for e in agent_log if e.get("request_id") == refused_id]
    assert "context_length_exceeded" in failed["message"]
    assert (failed["tenant"], failed["machine"], failed["level"]) == ("acme", "gpu-1", "INFO")
    assert all({"time", "level", "logger", "message"} <= set(e) for e in edge_log + agent_log)
