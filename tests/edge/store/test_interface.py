"""The store's interface (edge/store/interface.py), on every implementation (conftest.py): the
same answers, the same ``Conflict``s, the same failures."""

from __future__ import annotations

import time

import pytest

from edge.store import AUDIT_COLUMNS, Conflict, KeyLimits, RejectedRow, Store


def _admin_event(at: float, subject: str = "ci") -> tuple[object, ...]:
    head = ("t1", at, "admin", "operator", "key.created", subject)
    return head + (None,) * (len(AUDIT_COLUMNS) - len(head))


async def test_a_pairing_code_is_redeemed_once(store: Store) -> None:
    await store.tenants.create("t1", "acme")
    await store.machines.add_pairing_code("h", "t1", "gpu-1", time.time() + 60)
    machine = await store.machines.redeem_pairing_code("h", "m1", b"k" * 32)
    assert machine is not None
    assert machine.name == "gpu-1"
    assert await store.machines.redeem_pairing_code("h", "m2", b"k" * 32) is None
    assert [m.id for m in await store.machines.of_tenant("t1")] == ["m1"]
    found = await store.machines.by_id("m1")
    assert found is not None and found.public_key == b"k" * 32 and found.revoked_at is None


async def test_an_expired_pairing_code_is_not_redeemed(store: Store) -> None:
    await store.tenants.create("t1", "acme")
    await store.machines.add_pairing_code("h", "t1", "gpu-1", time.time() - 1)
    assert await store.machines.redeem_pairing_code("h", "m1", b"k" * 32) is None


async def test_machine_names_are_unique_among_live_machines(store: Store) -> None:
    await store.tenants.create("t1", "acme")
    await store.machines.add_pairing_code("h1", "t1", "gpu-1", time.time() + 60)
    machine = await store.machines.redeem_pairing_code("h1", "m1", b"k" * 32)
    assert machine is not None
    with pytest.raises(Conflict):
        await store.machines.add_pairing_code("h2", "t1", "gpu-1", time.time() + 60)
    await store.machines.revoke(machine.id)
    assert await store.machines.by_name("t1", "gpu-1") is None
    await store.machines.add_pairing_code(
        "h3", "t1", "gpu-1", time.time() + 60
    )  # the name is free again


async def test_redeeming_a_code_whose_name_was_taken_meanwhile_conflicts_and_keeps_it(
    store: Store,
) -> None:
    await store.tenants.create("t1", "acme")
    await store.machines.add_pairing_code("h1", "t1", "gpu-1", time.time() + 60)
    await store.machines.add_pairing_code("h2", "t1", "gpu-1", time.time() + 60)
    assert await store.machines.redeem_pairing_code("h1", "m1", b"k" * 32) is not None
    with pytest.raises(Conflict):
        await store.machines.redeem_pairing_code("h2", "m2", b"k" * 32)
    await store.machines.revoke("m1")
    # The conflict rolled the redemption back whole: the code was not spent.
    assert await store.machines.redeem_pairing_code("h2", "m2", b"k" * 32) is not None


async def test_duplicate_tenants_and_keys_conflict(store: Store) -> None:
    await store.tenants.create("t1", "acme")
    with pytest.raises(Conflict):
        await store.tenants.create("t2", "acme")
    await store.keys.add("k1", "t1", "laptop", "sk-lt-abc", "hash1", None)
    with pytest.raises(Conflict):
        await store.keys.add("k2", "t1", "laptop", "sk-lt-def", "hash2", None)
    assert await store.keys.by_hash("hash1") is not None
    assert await store.keys.by_hash("hash2") is None
    with pytest.raises(Conflict):  # a secret digest already in use: nothing of k3 is kept
        await store.keys.add("k3", "t1", "other", "sk-lt-ghi", "hash1", None)
    assert await store.keys.by_name("t1", "other") is None


async def test_tenants_are_found_by_slug_and_id_and_listed(store: Store) -> None:
    await store.tenants.create("t2", "globex")
    created = await store.tenants.create("t1", "acme")
    assert await store.tenants.by_slug("acme") == created
    assert await store.tenants.by_id("t1") == created
    assert await store.tenants.by_slug("nope") is None
    assert [t.slug for t in await store.tenants.all()] == ["acme", "globex"]


async def test_rotation_keeps_old_secrets_until_the_grace_ends_and_never_extends_it(
    store: Store,
) -> None:
    await store.tenants.create("t1", "acme")
    await store.keys.add("k1", "t1", "ci", "sk-lt-a", "h1", None)
    await store.keys.rotate("k1", "sk-lt-b", "h2", grace_until=100.0)
    assert await store.keys.by_hash("h1", now=99.0) is not None
    assert await store.keys.by_hash("h1", now=100.0) is None
    await store.keys.rotate("k1", "sk-lt-c", "h3", grace_until=500.0)
    assert await store.keys.by_hash("h1", now=99.0) is not None  # still its own, earlier end
    assert await store.keys.by_hash("h1", now=200.0) is None
    assert await store.keys.by_hash("h2", now=499.0) is not None
    key = await store.keys.by_hash("h3", now=10**10)
    assert key is not None and key.prefix == "sk-lt-c"
    found = await store.keys.secret("h1")
    assert found is not None and found[1] == 100.0
    found = await store.keys.secret("h3")
    assert found is not None and found[1] is None


async def test_key_limits_round_trip(store: Store) -> None:
    await store.tenants.create("t1", "acme")
    limits = KeyLimits(("a", "b:1"), 1000, "week", 60, 6000, None)
    await store.keys.add("k1", "t1", "ci", "sk-lt-a", "h1", 12345.5, limits)
    key = await store.keys.by_name("t1", "ci")
    assert key is not None and key.limits == limits and key.expires_at == 12345.5
    await store.keys.touch("k1", 777.25)
    key = await store.keys.by_hash("h1", now=1.0)
    assert key is not None and key.last_used_at == 777.25


async def test_names_are_listed_in_byte_order(store: Store) -> None:
    """As SQLite sorts, whatever the PostgreSQL database's locale (which may put ``a-c``
    between ``ab`` and ``B``, or ``B`` after ``a``)."""
    await store.tenants.create("t1", "acme")
    names = ["ab", "B", "a-c", "_z", "a"]
    for n, name in enumerate(names):
        await store.keys.add(f"k{n}", "t1", name, "p", f"h{n}", None)
        await store.admin_keys.add(f"a{n}", "t1", f"ah{n}", name)
        await store.aliases.set("t1", name, "m")
    assert [k.name for k in await store.keys.of_tenant("t1")] == sorted(names)
    assert [k.name for k in await store.admin_keys.of_tenant("t1")] == sorted(names)
    assert list(await store.aliases.of_tenant("t1")) == sorted(names)


async def test_revoking_a_machine_revokes_its_bound_keys_only(store: Store) -> None:
    await store.tenants.create("t1", "acme")
    await store.machines.add_pairing_code("c", "t1", "gpu-1", time.time() + 60)
    machine = await store.machines.redeem_pairing_code("c", "m1", b"k" * 32)
    assert machine is not None
    await store.keys.add("k1", "t1", "bound", "p", "h1", None, KeyLimits(machine_id="m1"))
    await store.keys.add("k2", "t1", "free", "p", "h2", None)
    assert await store.machines.revoke("m1") == ["bound"]
    bound, free = await store.keys.by_hash("h1"), await store.keys.by_hash("h2")
    assert bound is not None and bound.revoked_at is not None
    assert free is not None and free.revoked_at is None
    revoked = await store.machines.by_id("m1")
    assert revoked is not None and revoked.revoked_at == bound.revoked_at


async def test_admin_keys_are_named_per_tenant_and_revoked_by_name(store: Store) -> None:
    await store.tenants.create("t1", "acme")
    assert not await store.admin_keys.has_operator()
    operator = await store.admin_keys.add("a0", None, "op-hash")
    assert operator.actor == "operator" and await store.admin_keys.has_operator()
    await store.admin_keys.add("a1", "t1", "h1", "ops")
    with pytest.raises(Conflict):
        await store.admin_keys.add("a2", "t1", "h2", "ops")
    found = await store.admin_keys.by_hash("h1")
    assert found is not None and (found.tenant_id, found.actor) == ("t1", "admin:ops")
    assert await store.admin_keys.revoke("t1", "ops")
    assert not await store.admin_keys.revoke("t1", "ops")
    assert await store.admin_keys.by_hash("h1") is None
    await store.admin_keys.add("a3", "t1", "h3", "ops")  # the name is free again


async def test_usage_batches_add_up_and_audit_prunes_by_age(store: Store) -> None:
    await store.tenants.create("t1", "acme")
    await store.keys.add("k1", "t1", "ci", "p", "h1", None)
    audit = [_admin_event(float(at)) for at in (10, 20, 30)]
    await store.usage.record(audit, [("k1", "2026-11-23", "t1", 1, 10, 20)])
    await store.usage.record(
        [], [("k1", "2026-11-23", "t1", 2, 5, 5), ("k1", "2026-11-24", "t1", 1, 1, 1)]
    )
    rows = await store.usage.daily("t1", "2026-11-01")
    assert [(r.day, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == [
        ("2026-11-23", 3, 15, 25),
        ("2026-11-24", 1, 1, 1),
    ]
    assert await store.usage.tokens_used("k1", "2026-11-24") == 2
    assert await store.usage.tokens_used("nope", "2026-11-01") == 0
    assert await store.usage.prune_audit(before=25.0) == 2
    assert [e["at"] for e in await store.usage.audit_events("t1", 0, None, 10)] == [30.0]


async def test_usage_and_audit_are_read_per_key_newest_first_within_the_limit(
    store: Store,
) -> None:
    await store.tenants.create("t1", "acme")
    await store.keys.add("k1", "t1", "one", "p", "h1", None)
    await store.keys.add("k2", "t1", "two", "p", "h2", None)
    request = dict.fromkeys(AUDIT_COLUMNS)
    request.update(tenant_id="t1", kind="request", actor="one", action="POST /v1/chat/completions")
    request.update(key_id="k1", status=200, prompt_tokens=3, ttft_ms=1.5, user_agent="ua")
    request.update(request_id="req_0123456789abcdef0123456789abcdef")
    events = [tuple({**request, "at": float(at)}.values()) for at in (1, 2, 3)]
    await store.usage.record([*events, _admin_event(4.0)], [("k2", "2026-01-02", "t1", 1, 2, 3)])
    newest = await store.usage.audit_events("t1", 0, "k1", 2)
    assert [e["at"] for e in newest] == [3.0, 2.0]
    assert newest[0] == {**request, "at": 3.0}
    assert len(await store.usage.audit_events("t1", 2.0, None, 10)) == 3
    assert await store.usage.audit_events("t2", 0, None, 10) == []
    rows = await store.usage.daily("t1", "2026-01-01", key_id="k2")
    assert [(r.key_name, r.requests) for r in rows] == [("two", 1)]
    assert await store.usage.daily("t1", "2026-01-01", key_id="k1") == []


async def test_a_row_that_can_never_be_stored_is_rejected_with_nothing_of_its_batch(
    store: Store,
) -> None:
    await store.tenants.create("t1", "acme")
    await store.keys.add("k1", "t1", "ci", "p", "h1", None)
    too_many = _admin_event(2.0)[:11] + (2**63,) + (None,) * 6  # prompt_tokens past 64 bits
    with pytest.raises(RejectedRow):
        await store.usage.record(
            [_admin_event(1.0), too_many], [("k1", "2026-11-23", "t1", 1, 1, 1)]
        )
    assert await store.usage.audit_events("t1", 0, None, 10) == []
    assert await store.usage.daily("t1", "2026-01-01") == []
    await store.usage.record([_admin_event(1.0)], [])  # and the store goes on


async def test_response_storage_is_off_by_default_and_per_tenant(store: Store) -> None:
    await store.tenants.create("t1", "acme")
    await store.tenants.create("t2", "globex")
    assert not await store.tenants.stores_responses("t1")
    assert await store.tenants.set_store_responses("t1", True) == 0
    assert await store.tenants.stores_responses("t1") and not await store.tenants.stores_responses(
        "t2"
    )


async def test_stored_responses_are_read_and_deleted_within_their_tenant(store: Store) -> None:
    await store.tenants.create("t1", "acme")
    await store.tenants.create("t2", "globex")
    await store.tenants.set_store_responses("t1", True)
    items = [{"type": "message", "role": "user", "content": "hi"}]
    await store.responses.save("resp_1", "t1", "k1", 1.0, {"id": "resp_1", "output": []}, items)
    assert await store.responses.get("t1", "resp_1") == ({"id": "resp_1", "output": []}, items)
    assert await store.responses.get("t2", "resp_1") is None
    assert not await store.responses.delete("t2", "resp_1")
    assert await store.responses.delete("t1", "resp_1")
    assert await store.responses.get("t1", "resp_1") is None
    assert not await store.responses.delete("t1", "resp_1")


async def test_a_stored_response_comes_back_as_it_was_written(store: Store) -> None:
    """Its keys in their order (what a client reads back looks like what it was sent) and any
    text a client sent, a NUL or a lone surrogate included."""
    await store.tenants.create("t1", "acme")
    response = {"status": "completed", "id": "resp_1", "object": "response", "zz": 1, "a": 2.5}
    items = [{"type": "message", "content": "nul \u0000, lone \ud800, ünïcode"}]
    await store.responses.save("resp_1", "t1", "k1", 1.0, response, items)
    stored = await store.responses.get("t1", "resp_1")
    assert stored == (response, items)
    assert list(stored[0]) == list(response)


async def test_turning_response_storage_off_deletes_the_stored_ones(store: Store) -> None:
    await store.tenants.create("t1", "acme")
    await store.tenants.create("t2", "globex")
    for tenant in ("t1", "t2"):
        await store.tenants.set_store_responses(tenant, True)
        await store.responses.save(f"resp_{tenant}", tenant, "k", 1.0, {}, [])
    assert await store.tenants.set_store_responses("t1", False) == 1
    assert await store.responses.get("t1", "resp_t1") is None
    assert await store.responses.get("t2", "resp_t2") is not None  # other tenants keep theirs


async def test_aliases_are_set_replaced_and_deleted_per_tenant(store: Store) -> None:
    await store.tenants.create("t1", "acme")
    await store.tenants.create("t2", "globex")
    await store.aliases.set("t1", "gpt-4o", "qwen3:8b")
    assert await store.aliases.of_tenant("t1") == {"gpt-4o": "qwen3:8b"}  # now cached
    await store.aliases.set("t1", "gpt-4o", "llama3.2:3b")
    assert await store.aliases.of_tenant("t1") == {"gpt-4o": "llama3.2:3b"}
    assert await store.aliases.of_tenant("t2") == {}
    assert not await store.aliases.delete("t2", "gpt-4o")
    assert await store.aliases.delete("t1", "gpt-4o")
    assert await store.aliases.of_tenant("t1") == {}
