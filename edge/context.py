"""What every handler needs, reachable through one typed application key."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from edge.audit import Recorder
from edge.config import EdgeConfig
from edge.credentials import KeyHasher
from edge.limits import Limits
from edge.registry import Registry
from edge.store import Store


@dataclass(slots=True)
class EdgeContext:
    config: EdgeConfig
    store: Store
    registry: Registry
    hasher: KeyHasher
    limits: Limits
    recorder: Recorder


CONTEXT = web.AppKey("llmtunnel_edge", EdgeContext)
