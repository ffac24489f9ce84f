"""Several edge nodes as one (docs/ARCHITECTURE.md "Several edge nodes").

With ``--redis`` an edge node shares with the others what one process used to keep in its memory:

    redis_link.py   the connection to Redis, its errors as one ``RedisDown``
    scripts.py      the Lua scripts that check and charge the limits atomically
    counters.py     ``SharedLimits``: RPM/TPM buckets and budget reservations for every node at once
    broadcast.py    revocations and alias changes, published to every node's caches and tunnels

Without ``--redis`` none of this is imported: one node, its limits in its own memory
(``edge.limits``), exactly as before.
"""
