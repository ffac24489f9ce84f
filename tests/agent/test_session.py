from __future__ import annotations

from agent.backend import Piece
from agent.session import Outgoing, _host_of, _split


def test_split_never_cuts_a_character() -> None:
    assert _split("héllo", 2) == ("h", "éllo", 1)
    assert _split("héllo", 3) == ("hé", "llo", 0)
    assert _split("abc", 10) == ("abc", "", 7)
    assert _split("€", 2) == ("", "€", 2)


def test_outgoing_coalesces_and_respects_credit() -> None:
    out = Outgoing()
    out.add(Piece(content="Hello"))
    out.add(Piece(content=", world", thinking="hmm"))
    delta = out.take(7, 6)
    assert delta is not None
    assert (delta.stream_id, delta.thinking, delta.content) == (7, "hmm", "Hel")
    rest = out.take(7, 100)
    assert rest is not None
    assert rest.content == "lo, world"
    assert out.empty
    assert out.take(7, 100) is None


def test_tool_calls_leave_without_credit() -> None:
    out = Outgoing()
    call = {"id": "call_1", "name": "f", "arguments": {}}
    out.add(Piece(tool_calls=[call]))
    delta = out.take(1, 0)
    assert delta is not None
    assert delta.tool_calls == [call]


def test_host_of_matches_what_clients_send_as_host() -> None:
    assert _host_of("https://Acme.Example.com") == "acme.example.com"
    assert _host_of("https://acme.example.com:443") == "acme.example.com"
    assert _host_of("https://localhost:8443") == "localhost:8443"
    assert _host_of("http://[::1]:8080") == "[::1]:8080"
