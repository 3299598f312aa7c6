"""The container image's HEALTHCHECK: GET /healthz where the config says the server listens.

`python -m monitor.healthcheck` exits 0 on a 200 and 1 otherwise. It follows the config
named by $MONITOR_CONFIG: its port, and HTTPS when `server.tls` is set (with the server's
own certificate as the client's when client certificates are required). Without a readable
config (the image's `demo`), it checks the default http://127.0.0.1:9877.
"""

from __future__ import annotations

import ssl
import sys
import urllib.request

from monitor.config.errors import ConfigError
from monitor.config.loading import config_path, load_config
from monitor.config.schema import ServerSettings

TIMEOUT = 4.0


def target(server: ServerSettings) -> tuple[str, ssl.SSLContext | None]:
    """The /healthz URL of a server and the TLS context to reach it with (None: plain HTTP)."""
    host = server.host
    if host in {"", "0.0.0.0"}:
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    port = server.port or ServerSettings().port
    if server.tls is None:
        return f"http://{host}:{port}/healthz", None
    # The certificate names the Service, not the loopback address; this check proves the
    # process answers, and the scraper verifies the certificate.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if server.tls.client_ca_file is not None:
        context.load_cert_chain(server.tls.cert_file, server.tls.key_file)
    return f"https://{host}:{port}/healthz", context


def main() -> int:
    try:
        server = load_config(config_path(None)).server
    except ConfigError:
        server = ServerSettings()
    try:
        url, context = target(server)
        with urllib.request.urlopen(url, timeout=TIMEOUT, context=context) as response:  # noqa: S310 - a fixed http(s) URL
            return 0 if response.status == 200 else 1
    except (OSError, ValueError, ssl.SSLError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
