"""Who is calling: API keys for the public API, admin keys for the admin API (README "Keys,
limits and audit").

A key is looked up by its HMAC digest, so the secret is never compared byte by byte against
anything an attacker controls. The tenant comes from the Host header (``SLUG.DOMAIN``); a Host
without a slug (an IP address, ``localhost``, the bare domain) falls back to the key's tenant.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aiohttp import web

from edge.audit import RequestRecord
from edge.context import CONTEXT
from edge.errors import ApiError
from edge.model_names import same_model
from edge.store import AdminKey, ApiKey, Tenant

LAST_USED_RESOLUTION = 60.0


@dataclass(frozen=True, slots=True)
class Caller:
    key: ApiKey
    tenant: Tenant
    record: RequestRecord  # this request's audit record
    aliases: dict[str, str]  # the tenant's model aliases: name clients use → model served

    def real_model(self, name: str) -> str:
        return self.aliases.get(name, name)

    def ensure_model_allowed(self, model: str) -> None:
        """403 ``model_not_allowed`` when the key is scoped to other models."""
        allowed = self.key.limits.models
        if not self.allows(model):
            assert allowed is not None
            raise ApiError(
                403,
                "model_not_allowed",
                f"This API key may not use the model `{model}`; it may use: "
                + ", ".join(f"`{m}`" for m in allowed),
                param="model",
            )

    def allows(self, model: str) -> bool:
        """Scopes name served models; an alias is allowed when its model is (or it is named).
        Names compare as Ollama reads them: a scope of ``qwen3`` allows ``qwen3:latest``."""
        allowed = self.key.limits.models
        return (
            allowed is None
            or same_model(model, allowed)
            or same_model(self.real_model(model), allowed)
        )


RECORD = web.RequestKey("llmtunnel_record", RequestRecord)  # made by the audit middleware


def request_record(request: web.Request) -> RequestRecord:
    record = request.get(RECORD)
    if record is None:
        record = RequestRecord(f"{request.method} {request.path}", request.remote, None)
        request[RECORD] = record
    return record


def bearer_token(request: web.Request) -> str | None:
    """The secret from ``Authorization: Bearer …`` or, as Anthropic clients send it, x-api-key."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key", "").strip() or None


def host_slug(host: str, domain: str) -> str | None:
    """The tenant slug named by ``host`` under ``domain``, or ``None`` when the host names none."""
    name = _strip_port(host).lower().rstrip(".")
    domain = domain.lower().rstrip(".")
    if name.endswith("." + domain):
        return name[: -len(domain) - 1]
    return None


def _strip_port(host: str) -> str:
    if host.startswith("["):  # [::1]:8443
        return host[1 : host.find("]")] if "]" in host else host
    try:
        ipaddress.IPv6Address(host)
        return host
    except ValueError:
        return host.rsplit(":", 1)[0]


def _invalid_key(message: str = "Incorrect API key provided") -> ApiError:
    return ApiError(401, "invalid_api_key", message)


async def authenticate(request: web.Request) -> Caller:
    """The calling key and its tenant, or ``ApiError`` 401."""
    ctx = request.config_dict[CONTEXT]
    token = bearer_token(request)
    if token is None:
        raise _invalid_key(
            "Missing API key: send it as `Authorization: Bearer sk-lt-…` or `x-api-key`"
        )
    now = ctx.clock()
    # Cached, but never past a revocation, a rotation's grace or an expiry (edge/store/cache.py).
    key = await ctx.store.keys.by_hash(ctx.hasher.digest(token), now)
    if key is None or key.revoked_at is not None:
        raise _invalid_key()
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiError(401, "key_expired", "This API key has expired")
    tenant = await ctx.store.tenants.by_id(key.tenant_id)
    if tenant is None:
        raise _invalid_key()
    slug = host_slug(request.host, ctx.config.domain)
    if slug is not None and slug != tenant.slug:
        # Same message as an unknown key: a key must not learn which other tenants exist.
        raise _invalid_key()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        await ctx.store.keys.touch(key.id, now)  # at most one write per key per minute
    record = request_record(request)
    record.tenant_id, record.key_id, record.key_name = tenant.id, key.id, key.name
    record.tenant_slug = tenant.slug
    return Caller(key, tenant, record, await ctx.store.aliases.of_tenant(tenant.id))


async def authenticate_admin(request: web.Request) -> AdminKey:
    """The calling admin key, or ``ApiError`` 401."""
    ctx = request.config_dict[CONTEXT]
    token = bearer_token(request)
    admin = await ctx.store.admin_keys.by_hash(ctx.hasher.digest(token)) if token else None
    if admin is None:
        raise ApiError(401, "invalid_admin_key", "Missing or incorrect admin key")
    return admin


def authorize_tenant(admin: AdminKey, tenant: Tenant) -> None:
    """Tenant admins manage only their own tenant; the operator manages all."""
    if admin.tenant_id is not None and admin.tenant_id != tenant.id:
        raise ApiError(403, "forbidden", "This admin key does not manage that tenant")
