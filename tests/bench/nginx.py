"""nginx as a peer: a C reverse proxy in front of the same token source, TLS ended at nginx as
the edge ends it, with the edge's own certificate and key.

One worker process (the edge is one Python process); ``proxy_buffering off`` so each token goes
out as it comes in; HTTP/1.1 to the source with a pool of kept-alive connections; one access-log
line per request, as the edge writes one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream source {{
        server 127.0.0.1:{source};
        keepalive 512;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://source;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""


def binary() -> str | None:
    """Debian's nginx, if installed (``apt-get install nginx``)."""
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def command(
    nginx: str, directory: Path, port: int, source: int, cert: Path, key: Path
) -> list[str]:
    """Writes the configuration into ``directory`` and returns the command that serves it."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(CONF.format(dir=directory, port=port, source=source, cert=cert, key=key))
    return [nginx, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(conf)]
