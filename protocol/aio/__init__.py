"""The asyncio adapter both ends of the tunnel run the sans-I/O core in (websockets' ``asyncio/``
beside its ``protocol.py``): the only part of ``protocol`` that imports asyncio, and it imports no
WebSocket library either. Each end gives it a ``Transport`` over its own library.

    transport.py  Transport: send / recv / close / abort of whole binary messages; send_all, the
                  one loop that writes what a connection queued, each write bounded in time
    login.py      edge_login, agent_login, agent_probe: drive a §3 login machine over a
                  transport, in bounded time, answering any failure with ``Connection.fail``
                  and closing
    link.py       Link: a logged-in connection: the read loop, the single writer, the heartbeat
                  and watchdog (§9), bounded writes, closing; edge and agent sessions subclass it.
                  (Traffic, from protocol.traffic: what links moved, for the metrics)
"""

from protocol.aio.link import Link
from protocol.aio.login import agent_login, agent_probe, edge_login
from protocol.aio.transport import Transport
from protocol.traffic import Traffic

__all__ = ["Link", "Traffic", "Transport", "agent_login", "agent_probe", "edge_login"]
