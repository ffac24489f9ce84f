"""The edge's check of a login claim against the store (PROTOCOL.md §3): the machine, or one
refusal for unknown, revoked and forged alike, after the same work."""

from __future__ import annotations

from typing import cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.agents import endpoint
from edge.agents.endpoint import check_claim
from edge.store import Machine, Store
from protocol import Claim, auth_message

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes_raw()
MESSAGE = auth_message(b"\x01" * 32, "acme.example.test", 1)


def machine(machine_id: str, revoked_at: float | None = None) -> Machine:
    return Machine(machine_id, "t1", machine_id, PUBLIC, 0.0, revoked_at)


class Machines:
    def __init__(self, *machines: Machine) -> None:
        self._by_id = {m.id: m for m in machines}

    async def by_id(self, machine_id: str) -> Machine | None:
        return self._by_id.get(machine_id)


class FakeStore:
    def __init__(self, *machines: Machine) -> None:
        self.machines = Machines(*machines)


STORE = cast(Store, FakeStore(machine("m_good"), machine("m_revoked", revoked_at=1.0)))


async def test_a_good_signature_of_a_live_machine_is_that_machine() -> None:
    found = await check_claim(STORE, Claim("m_good", MESSAGE, KEY.sign(MESSAGE)))
    assert found is not None and found.id == "m_good"


async def test_unknown_revoked_and_forged_are_refused_after_the_same_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked: list[bytes] = []
    real = endpoint.verify_signature

    def counting(public_key: bytes, signature: bytes, message: bytes) -> bool:
        checked.append(public_key)
        return real(public_key, signature, message)

    monkeypatch.setattr(endpoint, "verify_signature", counting)
    forged = Ed25519PrivateKey.generate().sign(MESSAGE)
    claims = [
        Claim("m_unknown", MESSAGE, KEY.sign(MESSAGE)),
        Claim("m_revoked", MESSAGE, KEY.sign(MESSAGE)),  # its own key's signature, even
        Claim("m_good", MESSAGE, forged),
        Claim("m_good", auth_message(b"\x02" * 32, "acme.example.test", 1), KEY.sign(MESSAGE)),
    ]
    assert [await check_claim(STORE, claim) for claim in claims] == [None] * 4
    # One signature check each; the unknown and the revoked one against a key nobody holds.
    assert len(checked) == 4
    assert checked[0] == checked[1] != checked[2] == checked[3]
    assert checked[2] == PUBLIC
