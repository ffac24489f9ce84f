"""The command line without servers: every command's help, the ``admin`` group's connection
options, the shared helpers, and that starting it imports neither edge nor agent."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from llmtunnel import admin_client
from llmtunnel.cli import app
from llmtunnel.cli.common import parse_duration, parse_since

ADMIN_ENV = ("LLMTUNNEL_EDGE_URL", "LLMTUNNEL_ADMIN_KEY", "LLMTUNNEL_CA_FILE")

COMMANDS = [
    "", "demo", "sim-ollama", "sim-openai", "edge", "edge serve",
    "admin", "admin usage", "admin audit", "admin alias",
    "admin tenant", "admin tenant create", "admin tenant list", "admin tenant update",
    "admin machine", "admin machine pair", "admin machine list", "admin machine revoke",
    "admin key", "admin key create", "admin key list", "admin key rotate", "admin key revoke",
    "admin admin-key", "admin admin-key create", "admin admin-key list", "admin admin-key revoke",
    "agent", "agent pair", "agent run", "agent status",
]  # fmt: skip


@pytest.fixture(autouse=True)
def no_admin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ADMIN_ENV:
        monkeypatch.delenv(name, raising=False)


def _commands(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, [*path, name])


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(
        app, list(args), env={"COLUMNS": "200", **(env or {})}, prog_name="llmtunnel"
    )


def test_every_command_renders_its_help_with_its_options_and_without_the_edge() -> None:
    commands = list(_commands(typer.main.get_command(app), []))
    assert [" ".join(path) for path, _ in commands] == COMMANDS
    for path, command in commands:
        result = invoke(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        text = " ".join(result.output.split())
        assert f"llmtunnel {' '.join(path)}".rstrip() in text
        assert " ".join(command.help.split()) in text, path
        for param in command.params:
            names = param.opts if param.param_type_name == "option" else [param.name]
            for name in names:
                assert name in result.output, (path, name)
        for name in getattr(command, "commands", {}):
            assert name in result.output, (path, name)


def test_the_admin_group_takes_the_edge_options_once_and_each_command_keeps_json() -> None:
    admin_help = invoke("admin", "--help").output
    assert "Manage tenants, machines and keys." in admin_help
    for option in ("--edge", "--admin-key", "--ca-file", *ADMIN_ENV):
        assert option in admin_help
    admin = typer.main.get_command(app).commands["admin"]  # type: ignore[attr-defined]
    for path, command in _commands(admin, ["admin"]):
        if path == ["admin"]:
            continue
        command_help = invoke(*path, "--help").output
        assert "--edge" not in command_help and "--admin-key" not in command_help, path
        if not hasattr(command, "commands"):
            assert "--json" in command_help, path


@dataclass
class FakeEdge:
    """Stands in for the admin API behind the HTTP client: records the clients made and what
    they were asked, answers from ``replies``."""

    replies: dict[tuple[str, str], Any] = field(default_factory=dict)
    made: list[tuple[str, str, str | None]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    closed: int = 0

    def client(self, edge_url: str, admin_key: str, ca_file: str | None = None) -> FakeClient:
        self.made.append((edge_url, admin_key, ca_file))
        return FakeClient(self)


@dataclass
class FakeClient:
    edge: FakeEdge

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        self.edge.requests.append((method, path, body))
        reply = self.edge.replies[method, path]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def close(self) -> None:
        self.edge.closed += 1


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEdge:
    edge = FakeEdge()
    monkeypatch.setattr(admin_client, "AdminClient", edge.client)
    return edge


KEYS = {
    "keys": [
        {
            "name": "ci", "prefix": "sk-lt-ab12", "models": ["qwen3:8b"], "budget_tokens": 200000,
            "budget_period": "day", "rpm": 60, "tpm": None, "machine": None,
            "created_at": 0.0, "last_used_at": None, "expires_at": None,
        }
    ]
}  # fmt: skip


def test_admin_options_go_before_the_sub_command(fake: FakeEdge) -> None:
    fake.replies["GET", "/tenants/acme/keys"] = KEYS
    result = invoke(
        "admin", "--edge", "https://example.com", "--admin-key", "sk-lt-admin-x",
        "--ca-file", "/ca.pem", "key", "list", "acme",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert fake.made == [("https://example.com", "sk-lt-admin-x", "/ca.pem")]
    assert fake.requests == [("GET", "/tenants/acme/keys", None)]
    assert fake.closed == 1
    lines = result.output.splitlines()
    assert [cell.strip() for cell in lines[0].split("  ") if cell] == [
        "NAME", "PREFIX", "MODELS", "LIMITS", "CREATED", "LAST USED", "EXPIRES"
    ]  # fmt: skip
    assert [cell.strip() for cell in lines[1].split("  ") if cell] == [
        "ci", "sk-lt-ab12…", "qwen3:8b", "200,000 tok/day, 60 rpm", "1970-01-01 00:00 UTC", "-", "-"
    ]  # fmt: skip


def test_admin_options_come_from_the_environment(fake: FakeEdge) -> None:
    fake.replies["POST", "/tenants/acme/keys"] = {"secret": "sk-lt-s", "api_base": "https://a/v1"}
    env = dict(zip(ADMIN_ENV, ["http://edge", "sk-lt-admin-y", "/ca.pem"], strict=True))
    result = invoke("admin", "key", "create", "acme", "--name", "ci", "--expires", "1h", env=env)
    assert result.exit_code == 0, result.output
    assert fake.made == [("http://edge", "sk-lt-admin-y", "/ca.pem")]
    assert fake.requests == [
        ("POST", "/tenants/acme/keys", {"name": "ci", "expires_in_seconds": 3600})
    ]
    assert result.output.splitlines() == [
        "API key ci for acme (shown once, store it now):",
        "  sk-lt-s",
        "base URL: https://a/v1",
    ]
    result = invoke("admin", "key", "create", "acme", "--name", "ci", "--json", env=env)
    assert json.loads(result.output) == {"secret": "sk-lt-s", "api_base": "https://a/v1"}


def test_a_missing_edge_or_key_is_a_usage_error_before_anything_else(fake: FakeEdge) -> None:
    result = invoke("admin", "tenant", "update", "acme")  # would also fail for a missing setting
    assert result.exit_code == 2
    assert "Missing option '--edge' (env var: 'LLMTUNNEL_EDGE_URL')." in result.output
    assert "llmtunnel admin --help" in result.output
    result = invoke("admin", "--edge", "http://edge", "usage", "acme", "--since", "nonsense")
    # As when typer checked it: before the command looks at its own options.
    assert result.exit_code == 2
    assert "Missing option '--admin-key' (env var: 'LLMTUNNEL_ADMIN_KEY')." in result.output
    assert fake.made == []
    result = invoke("admin", "key", "list", "acme", "--edge", "http://edge")
    assert result.exit_code == 2 and "No such option: --edge" in result.output


def test_the_edge_s_error_ends_the_command_with_its_message(fake: FakeEdge) -> None:
    fake.replies["DELETE", "/tenants/acme/keys/ci"] = admin_client.AdminError("no key (HTTP 404)")
    env = dict(zip(ADMIN_ENV[:2], ["http://edge", "sk-lt-admin-y"], strict=True))
    result = invoke("admin", "key", "revoke", "acme", "ci", env=env)
    assert result.exit_code == 1
    assert "error: no key (HTTP 404)" in result.output
    assert fake.made == [("http://edge", "sk-lt-admin-y", None)] and fake.closed == 1


def test_durations_and_since() -> None:
    assert [parse_duration(d) for d in ("90s", "15m", "12h", "30d")] == [90, 900, 43200, 2592000]
    for bad in ("", "5", "h", "1.5h", "-1d", "3w"):
        with pytest.raises(typer.Exit):
            parse_duration(bad)
    assert parse_since(None) is None
    assert parse_since("2026-11-01") == 1793491200.0
    with pytest.raises(typer.Exit):
        parse_since("yesterday")


def test_starting_the_cli_imports_neither_edge_nor_agent() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, llmtunnel.cli; print(json.dumps([*sys.modules]))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    modules = set(json.loads(done.stdout))
    loaded = modules | {name.split(".")[0] for name in modules}
    for name in ("edge", "agent", "protocol", "aiohttp", "httpx", "ollama", "websockets"):
        assert name not in loaded
    assert "cryptography" not in loaded
    for lazy in (
        "llmtunnel.admin_client",
        "llmtunnel.demo",
        "llmtunnel.sim_ollama",
        "llmtunnel.sim_openai",
    ):
        assert lazy not in loaded


def test_the_edge_s_field_names_become_the_options_typed(fake: FakeEdge) -> None:
    env = dict(zip(ADMIN_ENV[:2], ["http://edge", "sk-lt-admin-y"], strict=True))
    error = admin_client.AdminError(
        "rpm must be a whole number from 1 to 1,000,000 (HTTP 400)", "rpm"
    )
    fake.replies["POST", "/tenants/acme/keys"] = error
    result = invoke("admin", "key", "create", "acme", "--name", "ci", "--rpm", "0", env=env)
    assert result.exit_code == 1
    assert "error: --rpm must be a whole number from 1 to 1,000,000 (HTTP 400)" in result.output
    # Durations are checked before they leave, in the unit the option takes.
    result = invoke(
        "admin", "key", "create", "acme", "--name", "ci", "--expires", "40000d", env=env
    )
    assert result.exit_code == 1
    assert "error: --expires is at most 36,500 days; got '40000d'" in result.output
    result = invoke(
        "admin", "machine", "pair", "acme", "--name", "m", "--ttl-minutes", "20000", env=env
    )
    assert result.exit_code == 2 and "--ttl-minutes" in result.output


def test_a_scope_no_machine_serves_is_warned_about(fake: FakeEdge) -> None:
    env = dict(zip(ADMIN_ENV[:2], ["http://edge", "sk-lt-admin-y"], strict=True))
    fake.replies["POST", "/tenants/acme/keys"] = {"secret": "sk-lt-s", "api_base": "https://a/v1"}
    fake.replies["GET", "/tenants/acme/machines"] = {"machines": [{"models": ["qwen3:8b"]}]}
    fake.replies["GET", "/tenants/acme/aliases"] = {"aliases": {"gpt-4o": "qwen3:8b"}}
    args = ("admin", "key", "create", "acme", "--name", "ci", "--models")
    result = invoke(*args, "qwen3:8b,gpt-4o", env=env)
    assert result.exit_code == 0 and "warning" not in result.output
    result = invoke(*args, "qwen3:8,gpt-4o", env=env)
    assert result.exit_code == 0  # the key is made: its machine may just be offline
    assert "warning: no online machine of acme serves qwen3:8 now" in result.output


def test_a_port_in_use_is_one_line_naming_the_option() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("sim-ollama", "--port", str(port))
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: 127.0.0.1:{port} is already in use: stop what listens there, or choose another"
        " with --port"
    )


def test_the_version_is_the_package_s() -> None:
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"llmtunnel {version('llmtunnel')}"


def test_machine_list_shows_a_degraded_machine_and_why(fake: FakeEdge) -> None:
    env = dict(zip(ADMIN_ENV[:2], ["http://edge", "sk-lt-admin-y"], strict=True))
    machine = {"models": ["qwen3:8b"], "created_at": 0.0}
    fake.replies["GET", "/tenants/acme/machines"] = {
        "machines": [
            {**machine, "name": "gpu-1", "online": True, "degraded": None},
            {**machine, "name": "gpu-2", "online": True, "degraded": "cannot reach Ollama"},
            {**machine, "name": "gpu-3", "online": False, "degraded": None},
        ]
    }
    result = invoke("admin", "machine", "list", "acme", env=env)
    assert result.exit_code == 0
    rows = {line.split()[0]: line.split()[1] for line in result.output.splitlines()[1:4]}
    assert rows == {"gpu-1": "online", "gpu-2": "degraded", "gpu-3": "offline"}
    assert "gpu-2 is degraded: its backend is not answering (cannot reach Ollama)" in result.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--advertise", "edge-2.example.com"], "--advertise: a node URL is http(s)://"),
        (["--advertise", "https:///edge"], "--advertise is https://HOST[:PORT]"),
        (["--advertise", "http://edge-2.example.com"], "--advertise is https://HOST[:PORT]"),
        (["--advertise", "https://e.example.com/" + "p" * 2100], "at most 2048 characters"),
        (["--node-id", "n" * 65], "--node-id: a node id is 1 to 64 printable characters"),
        (["--node-id", "edge\n2"], "--node-id: a node id is 1 to 64 printable characters"),
    ],
)
def test_node_flags_that_nodes_would_refuse_are_one_line_errors(
    flags: list[str], message: str, tmp_path: Any
) -> None:
    """Checked before anything starts: NODES would refuse them in every agent's session."""
    result = invoke(
        *("edge", "serve", "--domain", "example.com", "--tls-cert", "c", "--tls-key", "k"),
        *("--data-dir", str(tmp_path / "d"), "--redis", "redis://127.0.0.1:1"),
        *("--database-url", "postgresql://127.0.0.1:1/x", *flags),
    )
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert not (tmp_path / "d").exists()  # refused before the data directory was made


def test_plain_http_may_advertise_http() -> None:
    from llmtunnel.cli.edge import _check_node_flags

    assert _check_node_flags("edge-2", "http://127.0.0.1:8080/", True) == "http://127.0.0.1:8080"
    assert _check_node_flags(None, "https://edge-2.example.com", False) == (
        "https://edge-2.example.com"
    )
