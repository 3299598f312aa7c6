"""The templates and the static files: the Jinja2 environment (built late, on the first
page), and the package's static files, served only under content-hashed names.

Both stay package data of `monitor.web`: `monitor/web/templates/` and `monitor/web/static/`.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from monitor.evaluate import STATES
from monitor.web.status.headers import HEADERS, STATIC_HEADERS
from monitor.web.status.text import (
    DESCRIPTIONS,
    LABELS,
    ago,
    banners,
    error_text,
    last_call_text,
    reachability_text,
    shown_text,
    time_left,
    time_of_day,
    when,
)

if TYPE_CHECKING:
    import jinja2
    from starlette.templating import Jinja2Templates

STATIC_PATH = "/static"
STATIC_FILES = ("app.js", "app.css", "favicon.svg")


def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("monitor.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ago=ago,
        banners=banners,
        clock=time_of_day,
        error_text=error_text,
        last_call=last_call_text,
        reachability=reachability_text,
        shown=shown_text,
        time_left=time_left,
        when=when,
    )
    env.globals.update(labels=LABELS, descriptions=DESCRIPTIONS, states=STATES)
    return env


def jinja_templates() -> Jinja2Templates:
    # Jinja and its compiled templates cost about 3 MiB: not paid by a daemon that is only
    # scraped, nor before somebody opens the page.
    from starlette.templating import Jinja2Templates

    return Jinja2Templates(env=_environment())


def fingerprinted(name: str, body: bytes) -> str:
    """`app.js` -> `app.3f2a9c1b0d4e.js`: a new name whenever the content changes."""
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}.{hashlib.sha256(body).hexdigest()[:12]}{dot}{suffix}"


class FingerprintedFiles(StaticFiles):
    """The package's static files, served only under their content-hashed names."""

    def __init__(self) -> None:
        super().__init__(packages=[("monitor.web", "static")])
        folder = importlib.resources.files("monitor.web").joinpath("static")
        self.urls: dict[str, str] = {}  # real name -> URL
        self._names: dict[str, str] = {}  # fingerprinted name -> real name
        for name in STATIC_FILES:
            hashed = fingerprinted(name, folder.joinpath(name).read_bytes())
            self.urls[name] = f"{STATIC_PATH}/{hashed}"
            self._names[hashed] = name

    async def get_response(self, path: str, scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            return Response("method not allowed\n", 405, headers={**HEADERS, "allow": "GET, HEAD"})
        name = self._names.get(path)
        if name is None:
            return Response("not found\n", 404, headers=dict(HEADERS))
        response = await super().get_response(name, scope)
        response.headers.update(STATIC_HEADERS)
        return response
