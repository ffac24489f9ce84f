"""Where machines come in, and where the edge keeps track of them.

    app.py        the ``/agent`` sub-application: pairing and the tunnel endpoint
    pairing.py    ``POST /agent/pair``: a one-time code and a public key make a machine
    endpoint.py   ``GET /agent/connect``: the WebSocket, the login, then the session
    transport.py  the tunnel's transport over aiohttp's WebSocket
    session.py    ``AgentSession``: one logged-in machine, on the shared ``llmtunnel.tunnel.Link``
    stream.py     ``TunnelStream``: one request's stream, buffered as bytes within its credit
    registry.py   which machines are online; routing, the fair queue and slot leases

This package's ``__init__`` imports nothing: the registry is part of the edge's context, which
the sub-application's handlers themselves import.
"""
