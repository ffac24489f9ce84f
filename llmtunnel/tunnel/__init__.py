"""The asyncio adapter both ends of the tunnel run the sans-I/O core in (websockets' ``asyncio/``
beside its ``protocol.py``), kept outside ``protocol/`` so that the protocol stays sans-I/O. It
imports asyncio and the protocol only, no WebSocket library: each end gives it a ``Transport``
over its own library.

    transport.py  Transport: send / recv / close / abort of whole binary messages; send_all, the
                  one loop that writes what a connection queued, each write bounded in time
    login.py      edge_login, agent_login, agent_probe: drive a §3 login machine over a
                  transport, in bounded time, answering any failure with ``Connection.fail``
                  and closing
    link.py       Link: a logged-in connection: the read loop, the single writer, the heartbeat
                  and watchdog (§9), bounded writes, closing; edge and agent sessions subclass it.
                  (Traffic, from protocol.traffic: what links moved, for the metrics)
"""

from llmtunnel.tunnel.link import Link
from llmtunnel.tunnel.login import agent_login, agent_probe, edge_login
from llmtunnel.tunnel.transport import Transport
from protocol.traffic import Traffic

__all__ = ["Link", "Traffic", "Transport", "agent_login", "agent_probe", "edge_login"]
