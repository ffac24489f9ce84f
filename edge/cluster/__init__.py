"""Several edge nodes as one (docs/ARCHITECTURE.md "Several edge nodes").

With ``--redis`` an edge node shares with the others what one process used to keep in its memory:

    redis_link.py   the connection to Redis, its failures as one tuple of exceptions
    scripts.py      the Lua scripts that check and charge the limits atomically
    counters.py     ``SharedLimits``: RPM/TPM buckets and budget reservations, for every node
    broadcast.py    revocations and alias changes, applied by every node before the admin answers
    directory.py    which nodes are up, where, and which machines' tunnels each holds; NODES
    hop.py          forwarding a request to the node that holds a tunnel (the asking side)
    hop_server.py   ``POST /cluster/v1/streams``: the other side of the hop
    routing.py      ``ClusterRouter``: this node's tunnels first, then another node's
    node.py         ``ClusterNode``: all of the above, opened with the edge's state

Without ``--redis`` none of this is imported: one node, its limits in its own memory
(``edge.limits``), exactly as before.
"""
