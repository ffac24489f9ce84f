from __future__ import annotations

import json
import resource

from edge.listener import (
    FD_RESERVE,
    REFUSAL,
    default_max_connections,
    open_file_limit,
    raise_open_file_limit,
)


def test_the_default_cap_stays_below_the_open_file_limit() -> None:
    assert default_max_connections(1024) == 1024 - FD_RESERVE
    assert default_max_connections(65536) == 65536 - FD_RESERVE
    assert default_max_connections(256) == 128  # a small limit: half for clients
    for limit in (1, 2, 64, 300, 1 << 20):
        assert 1 <= default_max_connections(limit) <= max(limit - 1, 1)


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 512)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        assert open_file_limit() == lowered
        raised = raise_open_file_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised
        assert raised == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_refusal_is_a_complete_http_response_in_the_openai_error_shape() -> None:
    head, _, body = REFUSAL.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    assert "Connection: close" in lines and f"Content-Length: {len(body)}" in lines
    assert json.loads(body) == {
        "error": {
            "message": "the server has too many open connections; retry shortly",
            "type": "service_unavailable_error",
            "param": None,
            "code": "too_many_connections",
        }
    }
