"""The status page and its JSON API served by the real daemon: no secret reaches them, and
`status_page: false` removes their routes."""

from __future__ import annotations

import time
from collections.abc import Callable

from monitor.web.status.routes import PARTIAL_PATH
from tests.conftest import CANARY_KEY, ConfigWriter, canary_token
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, link

DAY = 86400.0

StartDaemon = Callable[..., Daemon]


def test_the_daemon_serves_the_page_without_secrets(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    now = time.time()
    standin.set("ok", link(canary_token("ok"), now + 30 * DAY))
    standin.set("soon", link(canary_token("soon"), now + 3600))
    standin.set("missing", link(None))
    daemon = start_daemon(write_config(["ok", "soon", "missing", "gone"]))
    wait_until(lambda: daemon.get("/readyz")[0] == 200, what="readiness")
    served = ""
    for path in ("/", PARTIAL_PATH, "/api/v1/agents", "/api/v1/status"):
        code, text = daemon.get(path)
        assert code == 200, path
        served += text
    assert CANARY_KEY not in served
    assert "tok_canary_" not in served
    assert "conversation_token" not in served
    code, text = daemon.get("/api/v1/agents?state=critical")
    assert '"agent_id":"soon"' in text
    assert '"agent_id":"ok"' not in text


def test_status_page_false_removes_the_routes(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon
) -> None:
    standin.set("ok", link(canary_token("ok"), None))
    daemon = start_daemon(write_config(["ok"], server={"status_page": False}))
    code, text = daemon.get("/")
    assert code == 200
    assert "<html" not in text
    assert "see /metrics" in text
    for path in ("/api/v1/agents", "/api/v1/status", PARTIAL_PATH, "/static/app.js"):
        assert daemon.get(path)[0] == 404, path
    assert daemon.get("/metrics")[0] == 200
