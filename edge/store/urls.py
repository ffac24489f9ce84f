"""Database URLs as they may be shown: in errors and logs, never with a password."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# libpq's query parameters that carry a secret (a password, or a file that holds one).
_SECRET_PARAMS = frozenset({"password", "passfile", "sslpassword"})


def redacted(url: str) -> str:
    """``url`` without its password, in the user part or the query: ``postgresql://edge:s3cret@db/x``
    → ``postgresql://edge@db/x``. Several hosts (``h1:5432,h2:5432``) are kept as written."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that cannot be parsed)"
    userinfo, at, hosts = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    netloc = f"{user}@{hosts}" if at and user else hosts
    params = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(k, v) for k, v in params if k not in _SECRET_PARAMS])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
