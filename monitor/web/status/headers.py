"""The headers every answer of the status page carries, a strict Content-Security-Policy
first: the script and the stylesheet are files under `/static/`, never inline."""

from __future__ import annotations

from collections.abc import Mapping

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS: Mapping[str, str] = {
    "cache-control": "no-store",
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
# A fingerprinted file never changes under its name: caches may keep it for a year.
STATIC_HEADERS: Mapping[str, str] = {
    **HEADERS,
    "cache-control": "public, max-age=31536000, immutable",
}
