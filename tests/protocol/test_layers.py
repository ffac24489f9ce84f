"""Who may import whom around the protocol (docs/ARCHITECTURE.md "Layers").

Nothing in ``protocol/`` imports an event loop or any I/O; the asyncio adapter,
``llmtunnel/tunnel/``, imports asyncio and the protocol only, and neither imports a WebSocket or
HTTP library: each end brings its own transport."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import llmtunnel.tunnel
import protocol
from tests.protocol.test_sans_io import forbidden, imported_modules

PACKAGE = Path(protocol.__file__).parent
AIO = Path(llmtunnel.tunnel.__file__).parent
LIBRARIES = ("aiohttp", "websockets", "httpx", "trio", "anyio")


def modules(where: Path) -> list[Path]:
    return sorted(where.rglob("*.py"))


def test_the_adapter_is_where_it_is_said_to_be() -> None:
    names = {path.stem for path in modules(AIO)}
    assert names >= {"__init__", "link", "login", "transport"}
    core = {path.stem for path in modules(PACKAGE)}
    assert core >= {"mux", "login", "codec", "frames", "liveness"}


def test_no_module_of_protocol_imports_asyncio_or_any_io() -> None:
    for path in modules(PACKAGE):
        imports = imported_modules(path.read_text(encoding="utf-8"))
        assert "<dynamic import>" not in imports, f"{path} imports dynamically"
        assert sorted(filter(forbidden, imports)) == [], f"{path} imports I/O"


def test_neither_protocol_nor_its_adapter_imports_a_websocket_or_http_library() -> None:
    for path in modules(PACKAGE) + modules(AIO):
        for name in imported_modules(path.read_text(encoding="utf-8")):
            assert name.split(".")[0] not in LIBRARIES, f"{path} imports {name}"


def test_the_adapter_imports_only_the_standard_library_and_the_core() -> None:
    for path in modules(AIO):
        for name in imported_modules(path.read_text(encoding="utf-8")):
            top = name.split(".")[0]
            ours = top == "protocol" or name.startswith("llmtunnel.tunnel")
            assert top in sys.stdlib_module_names or ours, f"{path} imports {name}"


def test_importing_the_core_does_not_load_the_adapter() -> None:
    code = (
        "import json, sys\n"
        "import protocol, protocol.login, protocol.mux, protocol.liveness\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=PACKAGE.parent,
    )
    loaded = set(json.loads(out.stdout))
    assert "protocol.login" in loaded
    assert not {"asyncio", "llmtunnel.tunnel"} & loaded
