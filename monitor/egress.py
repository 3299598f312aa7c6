"""How requests leave the monitor: which proxy (a workspace's `proxy:`, else the environment,
decided as Go's `http.ProxyFromEnvironment` decides) and which extra CA bundle (`ca_file:`).

No HTTP library here: the transport (monitor/elevenlabs/transport.py) acts on these decisions.
A proxy URL may hold a password: no message built here ever shows any part of one.
"""

from __future__ import annotations

import ipaddress
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitor.config.files import open_regular

PROXY_EXAMPLE = "http://proxy.internal:3128"
MAX_CA_FILE_BYTES = 4 * 1024 * 1024  # a full public bundle is about 0.25 MiB

# The variables Go reads, upper case first (golang.org/x/net/http/httpproxy FromEnvironment).
_PROXY_VARIABLES = {"https": ("HTTPS_PROXY", "https_proxy"), "http": ("HTTP_PROXY", "http_proxy")}
_NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy")
_DEFAULT_PORTS = {"http": 80, "https": 443}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def proxy_url_problem(value: str) -> str | None:
    """Why `value` cannot be a proxy URL, or None. Never quotes the value: it may hold a
    password."""
    if any(c.isspace() or not c.isprintable() for c in value):
        return "must be a URL without spaces or control characters (the value is not shown)"
    scheme = value.partition("://")[0].lower() if "://" in value else ""
    if scheme not in _DEFAULT_PORTS:
        if scheme.startswith("socks"):
            return "SOCKS proxies are not supported: use an http:// or https:// proxy"
        return (
            f"must start with http:// or https://, such as {PROXY_EXAMPLE} (the value is not shown)"
        )
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError:
        return (
            "has a port that is not a number from 1 to 65535, or a password with characters "
            "that need percent-encoding (the value is not shown)"
        )
    if not parts.hostname:
        return f"has no host, such as {PROXY_EXAMPLE} (the value is not shown)"
    if port == 0:
        return "has a port that is not a number from 1 to 65535 (the value is not shown)"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return (
            "has a path, query or fragment: a proxy URL is scheme://[user:password@]host:port "
            "(the value is not shown)"
        )
    return None


@dataclass(frozen=True, slots=True)
class Route:
    """How one workspace's requests leave: through `proxy` (a URL that may hold userinfo) or
    direct (None). `source` names where the proxy came from (`proxy` for the config key, else
    the environment variable); `problem`, for an environment value that is no usable proxy
    URL, is what every request fails with (`connection`), as a request through it would."""

    proxy: str | None = field(default=None, repr=False)
    source: str = ""
    problem: str | None = None


DIRECT = Route()


def route_for(target: str, proxy: str | None, environ: Mapping[str, str]) -> Route:
    """The route to the base URL `target`.

    A configured `proxy` carries every request, whatever the host, as a Go client built with
    `http.ProxyURL` does. Without one, the environment decides as Go's `ProxyFromEnvironment`:
    `HTTPS_PROXY` for https, `HTTP_PROXY` for http (upper case first, then lower case; no
    fallback from one to the other; `HTTP_PROXY` ignored under CGI, when `REQUEST_METHOD` is
    set), never for `localhost` or a loopback address, and not for a host `NO_PROXY` names.
    """
    if proxy is not None:
        return Route(proxy, "proxy")
    parts = urllib.parse.urlsplit(target)
    scheme = parts.scheme.lower()
    if scheme not in _PROXY_VARIABLES:
        return DIRECT
    name, value = _first_set(environ, _PROXY_VARIABLES[scheme])
    if not value or (scheme == "http" and environ.get("REQUEST_METHOD")):
        return DIRECT
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        port = _DEFAULT_PORTS[scheme]
    if not _use_proxy(host, port, _first_set(environ, _NO_PROXY_VARIABLES)[1]):
        return DIRECT
    if "://" not in value:
        value = "http://" + value  # as Go: `proxy.internal:3128` means http://
    problem = proxy_url_problem(value)
    if problem is not None:
        return Route(None, name, f"{name} is not a usable proxy URL: {problem}")
    return Route(value, name)


def _first_set(environ: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str]:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return names[0], ""


def _use_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Go's `useProxy`: whether a request to host:port goes through the environment's proxy."""
    if not host or host == "localhost":
        return False
    address = _ip(host)
    if address is not None and address.is_loopback:
        return False
    entries = (entry.strip().lower() for entry in no_proxy.split(","))
    return not any(_excludes(entry, host, port, address) for entry in entries if entry)


def _excludes(entry: str, host: str, port: int, address: Address | None) -> bool:
    """Whether one NO_PROXY entry names host:port (`address`: the host as an IP address)."""
    if entry == "*":
        return True
    if "/" in entry:  # a CIDR block: matches addresses only
        try:
            return address is not None and address in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    name, wanted_port = _split_host_port(entry)
    if not name or (wanted_port and wanted_port != str(port)):
        return False
    entry_address = _ip(name)
    if entry_address is not None:
        return address is not None and entry_address == address
    # `example.com` is the host and its subdomains; `.example.com` and `*.example.com` only
    # the subdomains.
    if name.startswith("*."):
        name = name[1:]
    return host.endswith(name if name.startswith(".") else "." + name) or host == name


def _split_host_port(entry: str) -> tuple[str, str]:
    if entry.startswith("["):
        end = entry.find("]")
        if end > 0:
            rest = entry[end + 1 :]
            return entry[1:end], rest[1:] if rest.startswith(":") else ""
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, port
    return entry, ""


def _ip(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").partition("%")[0])
    except ValueError:
        return None


def read_ca_bundle(path: Path | str) -> str:
    """The PEM text of a CA bundle, checked to hold at least one certificate; ValueError
    (a message naming what is wrong, not the path) when it cannot be read or holds none.
    Only a regular file is opened (files.open_regular)."""
    try:
        with open_regular(path) as file:
            raw = file.read(MAX_CA_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(exc.strerror or type(exc).__name__) from None
    if len(raw) > MAX_CA_FILE_BYTES:
        raise ValueError(f"larger than {MAX_CA_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("not a PEM file (text with -----BEGIN CERTIFICATE----- blocks)") from None
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError):  # ValueError: no data at all
        raise ValueError(
            "holds no PEM certificate (-----BEGIN CERTIFICATE----- block) that can be read"
        ) from None
    if not probe.cert_store_stats().get("x509"):
        raise ValueError("holds no PEM certificate (-----BEGIN CERTIFICATE----- block)")
    return text
