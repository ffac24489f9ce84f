"""A stream's output waiting for credit: what each frame may carry (PROTOCOL.md §8)."""

from __future__ import annotations

from agent.backend import Piece, Vectors
from agent.outgoing import Outgoing, split_utf8
from protocol import Delta, Embeddings


def test_split_never_cuts_a_character() -> None:
    assert split_utf8("héllo", 2) == ("h", "éllo", 1)
    assert split_utf8("héllo", 3) == ("hé", "llo", 0)
    assert split_utf8("abc", 10) == ("abc", "", 7)
    assert split_utf8("€", 2) == ("", "€", 2)


def test_outgoing_coalesces_and_respects_credit() -> None:
    out = Outgoing()
    out.add(Piece(content="Hello"))
    out.add(Piece(content=", world", thinking="hmm"))
    delta = out.take(7, 6)
    assert isinstance(delta, Delta)
    assert (delta.stream_id, delta.thinking, delta.content) == (7, "hmm", "Hel")
    rest = out.take(7, 100)
    assert isinstance(rest, Delta)
    assert rest.content == "lo, world"
    assert out.empty
    assert out.take(7, 100) is None


def test_tool_calls_leave_whole_and_only_within_credit() -> None:
    # PROTOCOL.md §8: a call costs its id + name + arguments and is never split.
    out = Outgoing()
    first = {"id": "call_1", "name": "f", "arguments": '{"a":1}'}  # 6 + 1 + 7 = 14 bytes
    second = {"id": "call_2", "name": "g", "arguments": '{"b":22}'}  # 15 bytes
    out.add(Piece(content="hi", tool_calls=[first, second]))
    assert out.pending_size == 2 + 14 + 15
    assert out.take(1, 0) is None
    assert out.take(1, 2 + 13) == Delta(1, "hi", "", [])  # one byte short of the first call
    assert out.take(1, 14 + 14) == Delta(1, "", "", [first])  # one byte short of the second
    assert out.take(1, 15) == Delta(1, "", "", [second])
    assert out.empty and out.pending_size == 0


def test_tool_calls_never_overtake_text_waiting_for_credit() -> None:
    out = Outgoing()
    call = {"id": "c", "name": "f", "arguments": "{}"}
    out.add(Piece(content="abcdef", tool_calls=[call]))
    assert out.take(1, 4) == Delta(1, "abcd", "", [])
    assert out.take(1, 100) == Delta(1, "ef", "", [call])


def test_vectors_leave_whole_as_credit_allows_with_their_input_index() -> None:
    out = Outgoing()
    out.add(Vectors([b"a" * 8, b"b" * 8, b"c" * 8]))
    assert out.pending_size == 24
    assert out.take(3, 7) is None  # not even one vector's worth of credit
    first = out.take(3, 17)
    assert first == Embeddings(3, 0, [b"a" * 8, b"b" * 8])
    assert not out.empty
    assert out.take(3, 8) == Embeddings(3, 2, [b"c" * 8])
    assert out.empty and out.pending_size == 0
