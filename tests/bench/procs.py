"""The processes the benchmarks start, and what each costs: CPU and memory from ``/proc``.

CPU is ``utime + stime`` from ``/proc/PID/stat`` (every thread of the process, in clock ticks),
read before and after a measurement; memory is ``VmRSS`` (now) and ``VmHWM`` (the peak since
the process started) from ``/proc/PID/status``. A server with workers (nginx) is counted with
its children.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name is in parentheses and may hold spaces: split after it.
    return raw[raw.rindex(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            if int(_stat_fields(int(entry.name))[1]) == pid:  # field 4: the parent's pid
                found.append(int(entry.name))
    return found


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Proc:
    """A process measured by name: ``edge``, ``agent``, ``nginx``, ``source``, ``client``."""

    name: str
    pid: int
    with_children: bool = False

    def pids(self) -> list[int]:
        return [self.pid, *(_children(self.pid) if self.with_children else [])]

    def cpu(self) -> float:
        """CPU seconds used so far (user + system)."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = _stat_fields(pid)
                total += int(fields[11]) + int(fields[12])  # fields 14 and 15: utime, stime
        return total / CLOCK_TICKS

    def rss_kib(self) -> int:
        return sum(_status_kib(pid, "VmRSS") for pid in self.pids())

    def hwm_kib(self) -> int:
        return sum(_status_kib(pid, "VmHWM") for pid in self.pids())


def box_busy() -> float:
    """CPU seconds the whole machine has spent busy (every core, interrupts included)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def started(
    args: list[str], log: Path, *, stdout_pipe: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, its output in ``log`` (or stdout piped), ended when the block ends."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE if stdout_pipe else out,
            stderr=out,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


def llmtunnel(*args: str, profile: Path | None = None) -> list[str]:
    """The ``llmtunnel`` CLI, run by this interpreter; under cProfile on the CPU clock
    (tests/bench/cpu_profile.py), writing ``profile`` when it exits, if given."""
    if profile:
        return [sys.executable, "-m", "tests.bench.cpu_profile", str(profile), *args]
    return [sys.executable, "-m", "llmtunnel", *args]


def tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g} s")


def established(port: int) -> int:
    """Established TCP connections whose local port is ``port``: the server's side."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            count += 1
    return count
