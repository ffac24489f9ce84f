"""Capped label values (edge/observability/labels.py)."""

from __future__ import annotations

from edge.observability.labels import OTHER, BoundedLabel


def test_the_first_values_pass_and_later_ones_are_other() -> None:
    label = BoundedLabel(2)
    assert [label(v) for v in ("a", "b", "c", "a", "d", "b")] == ["a", "b", OTHER, "a", OTHER, "b"]
    assert len(label) == 2


def test_other_cannot_be_a_tenant_slug_or_a_machine_name() -> None:
    from edge.admin.access import NAME
    from edge.admin.tenants import SLUG

    assert not SLUG.match(OTHER) and not NAME.match(OTHER)
