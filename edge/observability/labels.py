"""Bounded label values: a Prometheus series exists for every value a label ever took, so a label
fed from outside (a tenant's slug, a model name a machine advertises) is capped per process."""

from __future__ import annotations

# Every value past a label's cap. Parentheses are in no tenant slug, machine or key name.
OTHER = "(other)"


class BoundedLabel:
    """The first ``cap`` distinct values pass as they are; later ones are all ``OTHER``, so a
    label never has more than ``cap + 1`` values however many things exist or are named. A
    value that passed once always passes (its series keeps counting)."""

    __slots__ = ("_seen", "cap")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self.cap:
            self._seen.add(value)
            return value
        return OTHER

    def __len__(self) -> int:
        return len(self._seen)
