"""The HTTP transport under the client: httpx's API over aiohttp's pool, its TLS context, and
what a transport error means as a failure reason."""

from __future__ import annotations

import base64
import functools
import os
import ssl
import urllib.parse

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from monitor import logs
from monitor.egress import Route, read_ca_bundle, route_for
from monitor.model import Reason


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's verification (certifi's CAs), shared by every client: each load of the bundle
    holds about 0.8 MiB, and a reload or a new workspace would load it again."""
    return httpx.create_ssl_context()


@functools.lru_cache(maxsize=8)
def _tls_context_with(pem: str) -> ssl.SSLContext:
    """The default roots plus a `ca_file` bundle's (shared by the clients that name the same
    bundle, as long as its content stays the same)."""
    context = httpx.create_ssl_context()
    context.load_verify_locations(cadata=pem)
    return context


class EgressError(httpx.TransportError):
    """A request that cannot leave as configured: `detail` says why (fixed text, no secret)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Refusing(httpx.AsyncBaseTransport):
    """Fails every request with the same detail: an unusable proxy variable (as a Go client
    fails each request through one), or a ca_file gone since the config was loaded."""

    def __init__(self, detail: str) -> None:
        self._detail = detail

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise EgressError(self._detail)


def aiohttp_transport(
    connections: int,
    *,
    tls: bool,
    base_url: str = "",
    proxy: str | None = None,
    ca_file: str | None = None,
) -> httpx.AsyncBaseTransport:
    """httpx's API over aiohttp's connection pool, to `base_url` through the proxy its route
    names (monitor.egress: `proxy`, else HTTPS_PROXY/HTTP_PROXY/NO_PROXY read now), trusting
    the default roots plus `ca_file`'s.

    Measured here against the simulated API (20 ms, 64 in flight): httpx's own pool cost
    4.3 ms of CPU per request, mostly in httpcore's pool bookkeeping; this transport 0.4 ms.
    A plain-HTTP base URL (a stand-in, a proxy on the node) reached directly or through a
    plain-HTTP proxy loads no CA bundle: with redirects off nothing else is fetched, and its
    context trusts no certificate at all.
    """
    route = route_for(base_url, proxy, os.environ)
    if route.problem is not None:
        return _Refusing(route.problem)
    if ca_file is not None:
        try:
            context = _tls_context_with(read_ca_bundle(ca_file))
        except ValueError as exc:  # checked when the config was loaded: gone since
            return _Refusing(f"ca_file {ca_file}: {exc}")
    elif tls or (route.proxy or "").lower().startswith("https:"):
        context = _tls_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    proxy_url, authorization = _proxy_parts(route)
    transport = AiohttpTransport(
        # The transport makes a context of its own (the whole bundle again) unless given one;
        # it is used only by a session it creates itself, never by ours.
        verify=context,
        # Used for every request: CONNECT for https (with these headers), the absolute form
        # for http. Credentials go in a header, not aiohttp's deprecated proxy_auth.
        proxy=httpx.Proxy(proxy_url, headers=authorization) if proxy_url else None,
        client=lambda: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=connections,
                limit_per_host=connections,
                ssl=context,
                ttl_dns_cache=300,
            ),
            trust_env=False,
        ),
    )
    if authorization and not tls:
        # A plain-HTTP request goes to the proxy as it is: the header goes with it (never
        # with an https one, which reaches the API itself through the tunnel).
        return _WithHeaders(transport, authorization)
    return transport


def _proxy_parts(route: Route) -> tuple[str | None, dict[str, str]]:
    """The proxy's URL without userinfo, and its Proxy-Authorization header (Basic, from
    the userinfo, percent-decoded); the password is registered as a secret, as the key is,
    so that it is redacted should it ever reach a log line."""
    if route.proxy is None:
        return None, {}
    parts = urllib.parse.urlsplit(route.proxy)
    if parts.username is None and parts.password is None:
        return route.proxy, {}
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    for secret in {password, parts.password or ""}:
        logs.register_secret(secret)
    netloc = parts.netloc.rpartition("@")[2]
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return parts._replace(netloc=netloc).geturl(), {"Proxy-Authorization": f"Basic {credentials}"}


class _WithHeaders(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, headers: dict[str, str]) -> None:
        self._inner = inner
        self._headers = headers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers.update(self._headers)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


# What verification failed, by OpenSSL's X509_V_ERR code.
_UNTRUSTED = "TLS certificate not trusted (add its CA with ca_file)"
_VERIFY_CODES = {
    2: _UNTRUSTED,  # unable to get issuer certificate
    18: _UNTRUSTED,  # self-signed certificate
    19: _UNTRUSTED,  # self-signed certificate in the chain
    20: _UNTRUSTED,  # unable to get local issuer certificate
    21: _UNTRUSTED,  # unable to verify the first certificate
    9: "TLS certificate not yet valid",
    10: "TLS certificate expired",
    62: "TLS certificate does not match the host",
    64: "TLS certificate does not match the host",  # IP address mismatch
}


def _egress_failure(error: BaseException) -> str | None:
    """A fixed detail for a failure of the proxy or of TLS verification, or None."""
    if isinstance(error, EgressError):
        return error.detail
    if isinstance(error, aiohttp.ClientHttpProxyError):
        # The proxy answered CONNECT with something other than 200.
        hint = {
            407: ": check the proxy's credentials",
            403: ": the proxy does not allow this host",
        }.get(error.status, "")
        return f"proxy refused the tunnel (HTTP {error.status}{hint})"
    if isinstance(error, aiohttp.ClientProxyConnectionError):
        return "cannot connect to the proxy"
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        code = getattr(error.certificate_error, "verify_code", None)
        known = _VERIFY_CODES.get(code) if isinstance(code, int) else None
        return known or "TLS certificate verification failed"
    if isinstance(error, aiohttp.ClientConnectorSSLError):
        return "TLS handshake failed"
    return None


# aiohttp failures arrive as httpx exceptions whose cause is the aiohttp one; the mapping
# of httpx-aiohttp calls every broken connection a ConnectTimeout, so the cause decides.
_CAUSES: tuple[tuple[type[BaseException], Reason, str], ...] = (
    (aiohttp.ServerTimeoutError, Reason.TIMEOUT, "timeout"),
    (aiohttp.ClientConnectorError, Reason.CONNECTION, "cannot connect"),
    (aiohttp.ServerDisconnectedError, Reason.CONNECTION, "the connection broke while reading"),
    (aiohttp.ClientPayloadError, Reason.CONNECTION, "the connection broke while reading"),
    (aiohttp.ClientResponseError, Reason.CONNECTION, "the server broke the HTTP protocol"),
    (aiohttp.ClientOSError, Reason.CONNECTION, "the connection broke while reading"),
    (aiohttp.ClientConnectionError, Reason.CONNECTION, "the connection broke"),
)
_HTTPX: tuple[tuple[type[BaseException], Reason, str], ...] = (
    (httpx.TimeoutException, Reason.TIMEOUT, "timeout"),
    (httpx.ConnectError, Reason.CONNECTION, "cannot connect"),
    (httpx.ReadError, Reason.CONNECTION, "the connection broke while reading"),
    (httpx.WriteError, Reason.CONNECTION, "the connection broke while writing"),
    (httpx.RemoteProtocolError, Reason.CONNECTION, "the server broke the HTTP protocol"),
    (httpx.ProxyError, Reason.CONNECTION, "proxy error"),
)


def transport_failure(exc: BaseException) -> tuple[Reason, str]:
    """The reason and a fixed detail for a transport exception (never its text)."""
    cause = exc.__cause__
    for error in (exc, cause):
        detail = _egress_failure(error) if error is not None else None
        if detail is not None:
            return Reason.CONNECTION, detail
    for table, error in ((_CAUSES, exc), (_CAUSES, cause), (_HTTPX, exc)):
        for kind, reason, detail in table:
            if error is not None and isinstance(error, kind):
                return reason, detail
    return Reason.CONNECTION, type(exc).__name__
