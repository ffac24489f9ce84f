"""protocol/ stays sans-I/O: it imports no event loop, no socket, no WebSocket library."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import protocol

FORBIDDEN = frozenset(
    {
        "asyncio",
        "aiohttp",
        "websockets",
        "socket",
        "ssl",
        "selectors",
        "select",
        "trio",
        "anyio",
        "httpx",
        "http.client",
        "urllib.request",
    }
)
PACKAGE = Path(protocol.__file__).parent
ROOT = PACKAGE.parent
MODULES = {
    "__init__",
    "codec",
    "errors",
    "frames",
    "handshake",
    "json_values",
    "liveness",
    "mux",
    "windows",
}


def forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(f"{bad}.") for bad in FORBIDDEN)


def test_importing_protocol_loads_no_io_module() -> None:
    code = (
        "import json, sys\n"
        "import protocol, protocol.codec, protocol.errors, protocol.frames\n"
        "import protocol.handshake, protocol.json_values, protocol.liveness, protocol.mux\n"
        "import protocol.windows\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=ROOT,
    )
    loaded = set(json.loads(out.stdout))
    assert {"protocol.mux", "protocol.codec", "msgpack"} <= loaded  # the import really ran
    assert sorted(filter(forbidden, loaded)) == []


def imported_modules(source: str) -> set[str]:
    """Every module a source file imports, statically or through __import__/import_module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in {"__import__", "import_module"} and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value)
                else:
                    names.add("<dynamic import>")
    return names


def test_the_forbidden_check_matches_submodules_only() -> None:
    assert forbidden("asyncio") and forbidden("asyncio.tasks") and forbidden("http.client")
    assert not forbidden("asyncio_extras") and not forbidden("http") and not forbidden("urllib")


def test_the_scanner_sees_every_kind_of_import() -> None:
    source = (
        "import os, asyncio.tasks\n"
        "from socket import socket\n"
        "from . import frames\n"
        "import importlib\n"
        "importlib.import_module('ssl')\n"
        "__import__('trio')\n"
        "def f():\n    import aiohttp\n"
    )
    assert imported_modules(source) == {
        "os",
        "asyncio.tasks",
        "socket",
        "importlib",
        "ssl",
        "trio",
        "aiohttp",
    }


def test_no_protocol_module_imports_io() -> None:
    scanned = {path.stem for path in PACKAGE.glob("*.py")}
    assert scanned >= MODULES  # a moved package would make this test vacuous
    for path in sorted(PACKAGE.glob("*.py")):
        imports = imported_modules(path.read_text(encoding="utf-8"))
        assert "<dynamic import>" not in imports, f"{path.name} imports dynamically"
        bad = sorted(filter(forbidden, imports))
        assert bad == [], f"{path.name} imports {bad}"


def test_protocol_imports_only_the_standard_library_and_msgpack() -> None:
    allowed_third_party = {"msgpack"}
    for path in sorted(PACKAGE.glob("*.py")):
        for name in imported_modules(path.read_text(encoding="utf-8")):
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top in allowed_third_party | {"protocol"}, (
                f"{path.name} imports {name}"
            )
