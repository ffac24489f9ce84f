from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent import config
from agent.runner import backoff_delay


def _sample() -> config.AgentConfig:
    key, _ = config.new_key()
    import base64

    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return config.AgentConfig(
        edge_url="https://acme.example.com",
        machine_id="m_1",
        machine_name="gpu-1",
        tenant="acme",
        private_key=base64.b64encode(seed).decode(),
    )


def test_config_is_saved_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "agent.json"
    config.save(_sample(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = config.load(path)
    assert loaded.machine_id == "m_1"
    assert loaded.connect_url == "wss://acme.example.com/agent/connect"


def test_a_config_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    config.save(_sample(), path)
    os.chmod(path, 0o644)
    with pytest.raises(config.ConfigError, match="chmod 600"):
        config.load(path)


def test_a_missing_config_says_how_to_pair(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="llmtunnel agent pair"):
        config.load(tmp_path / "nothing.json")


def test_edge_urls_are_normalized() -> None:
    assert config.normalize_edge_url("https://Acme.Example.com/v1/") == "https://acme.example.com"
    with pytest.raises(config.ConfigError):
        config.normalize_edge_url("ftp://x")


def test_backoff_is_jittered_and_capped() -> None:
    delays = [backoff_delay(attempt, 0.5, 30.0) for attempt in range(20) for _ in range(20)]
    assert all(0 <= d <= 30.0 for d in delays)
    assert max(backoff_delay(0, 0.5, 30.0) for _ in range(100)) <= 0.5
    assert len(set(delays)) > 100  # jittered, not a fixed schedule
