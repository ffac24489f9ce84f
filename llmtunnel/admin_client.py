"""The admin CLI's HTTP client for the edge's admin API."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from agent.diagnose import explain


class AdminError(Exception):
    """The edge answered with an error, or could not be reached; the message is for people.
    ``param`` is the request field the edge named, if it named one."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class AdminClient:
    def __init__(self, edge_url: str, admin_key: str, ca_file: str | None = None) -> None:
        self._edge_url = edge_url
        self._http = httpx.Client(
            base_url=edge_url.rstrip("/"),
            headers={"Authorization": f"Bearer {admin_key}"},
            verify=ssl.create_default_context(cafile=ca_file) if ca_file else True,
            timeout=30.0,
        )

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, "/admin/v1" + path, json=body)
        except httpx.HTTPError as exc:
            raise AdminError(explain(exc, self._edge_url)) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            message = error.get("message") or response.text or response.reason_phrase
            param = error.get("param")
            raise AdminError(
                f"{message} (HTTP {response.status_code})",
                param if isinstance(param, str) else None,
            )
        return data
