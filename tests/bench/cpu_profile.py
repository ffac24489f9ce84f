"""Run the ``llmtunnel`` CLI under cProfile timed by the process's CPU clock, not the wall clock.

    python -m tests.bench.cpu_profile OUT.prof edge serve …

On a small shared machine a wall-clock profile charges a syscall with the time the process spent
descheduled while the peer it woke up ran (a loopback ``send`` looks like half a millisecond);
CPU time shows what the process itself spends.
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, *args = sys.argv[1:]
    sys.argv = ["llmtunnel", *args]
    profile = cProfile.Profile(time.process_time)
    try:
        profile.runcall(runpy.run_module, "llmtunnel", run_name="__main__")
    finally:
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
