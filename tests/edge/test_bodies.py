from __future__ import annotations

import pytest

from edge.bodies import Pacer, parse_object
from edge.errors import ApiError


async def test_heavy_steps_are_paced_by_their_own_length() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pause = Pacer(lambda: now[0], sleep)
    now[0] += 0.04  # a 40 ms step: a 40 ms pause, so the step held the loop half the time
    await pause()
    now[0] += 0.5  # a long step: the pause is capped, the body is not held back for long
    await pause()
    await pause()  # no work since: no wait
    assert slept == pytest.approx([0.04, Pacer.MAX_PAUSE, 0.0])


def test_bodies_are_parsed_strictly_into_an_object() -> None:
    assert parse_object(b'{"a": 1}') == {"a": 1}
    for raw, param in ((b"[1]", None), (b'{"a": NaN}', "a"), (b"{", None)):
        with pytest.raises(ApiError) as refused:
            parse_object(raw)
        assert (refused.value.status, refused.value.code) == (400, "invalid_json")
        assert refused.value.param == param
