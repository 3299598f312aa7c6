"""The real daemon process reaching the API through a real forward proxy on loopback, over TLS
signed by a private CA (`ca_file:`): the configured `proxy:`, HTTPS_PROXY from its
environment, and a proxy or a certificate that refuses (tests/proxy.py, tests/certs.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.certs import PROXIED_HOST, PrivateCa, make_ca
from tests.conftest import assert_clean, canary_token
from tests.daemon import Daemon, wait_until
from tests.proxy import ForwardProxy, TlsFront
from tests.standin import StandIn, link

StartDaemon = Callable[..., Daemon]
PASSWORD = "canary-proxy-p@ss"
USER = "monitor"
# The daemon gets only the proxy variables a test gives it, never the machine's own.
CLEAN_PROXY_ENV = dict.fromkeys(
    ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"), ""
)


@pytest.fixture
def ca(tmp_path: Path) -> PrivateCa:
    return make_ca(tmp_path / "ca")


@pytest.fixture
def tls_api(standin: StandIn, ca: PrivateCa) -> Iterator[TlsFront]:
    standin.set("a1", link(canary_token("egress"), time.time() + 30 * 86400))
    with TlsFront(standin.url, ca) as front:
        yield front


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy(credentials=(USER, PASSWORD), hosts={PROXIED_HOST: "127.0.0.1"}) as server:
        yield server


def write_config(directory: Path, **workspace: Any) -> Path:
    """One workspace watching agent a1; `ca.pem` is copied next to the config and named
    relative to it."""
    config = {
        "elevenlabs": {"timeout": "3s", "max_retries": 0, **workspace},
        "agents": [{"id": "a1"}],
        "poll": {"interval": "1h", "jitter": 0},
        "server": {"host": "127.0.0.1", "port": 0},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def assert_no_password(daemon: Daemon) -> None:
    metrics = daemon.metrics_text()
    output = daemon.output().decode(errors="replace")
    for where, text in (("/metrics", metrics), ("the daemon's output", output)):
        assert PASSWORD not in text, f"the proxy password leaked into {where}"
        assert "canary-proxy" not in text, f"the proxy password leaked into {where}"
        assert_clean(where, text)


def test_the_configured_proxy_carries_https_to_an_api_signed_by_a_private_ca(
    tmp_path: Path, tls_api: TlsFront, ca: PrivateCa, proxy: ForwardProxy, start_daemon: StartDaemon
) -> None:
    (tmp_path / "corp-ca.pem").write_bytes(ca.ca_file.read_bytes())
    # The environment's proxy: the configured one wins over it.
    with ForwardProxy() as decoy:
        config = write_config(
            tmp_path,
            base_url=tls_api.url,
            proxy=proxy.url_with(USER, PASSWORD),
            ca_file="corp-ca.pem",  # relative: to the config's directory
        )
        daemon = start_daemon(config, env={**CLEAN_PROXY_ENV, "HTTPS_PROXY": decoy.url})
        wait_until(lambda: daemon.state_of("a1") == "ok", what="a1 ok through the proxy")
        # The poll and the workspace's listings (usage, archived agents) each may open a tunnel.
        assert {(s.method, s.target) for s in proxy.requests()} == {
            ("CONNECT", f"127.0.0.1:{tls_api.port}")
        }
        assert decoy.count() == 0
        assert daemon.value("elevenlabs_agent_link_poll_success", agent_id="a1") == 1
        assert_no_password(daemon)


def test_https_proxy_in_the_environment_is_followed(
    tmp_path: Path, tls_api: TlsFront, ca: PrivateCa, proxy: ForwardProxy, start_daemon: StartDaemon
) -> None:
    # A host name only the proxy resolves: the agent is `ok` only if the daemon used it.
    config = write_config(
        tmp_path, base_url=f"https://{PROXIED_HOST}:{tls_api.port}", ca_file=str(ca.ca_file)
    )
    env = {
        **CLEAN_PROXY_ENV,
        "HTTPS_PROXY": proxy.url_with(USER, PASSWORD),
        "NO_PROXY": "localhost,.svc.cluster.local",
    }
    daemon = start_daemon(config, env=env)
    wait_until(lambda: daemon.state_of("a1") == "ok", what="a1 ok through HTTPS_PROXY")
    assert {(s.method, s.target) for s in proxy.requests()} == {
        ("CONNECT", f"{PROXIED_HOST}:{tls_api.port}")
    }
    assert_no_password(daemon)


def test_a_refusing_proxy_and_an_untrusted_certificate_fail_polls_not_the_daemon(
    tmp_path: Path, tls_api: TlsFront, proxy: ForwardProxy, start_daemon: StartDaemon
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "workspaces": [
                    {
                        "name": "wrong-password",
                        "base_url": tls_api.url,
                        "proxy": proxy.url_with(USER, "canary-proxy-wrong"),
                        "max_retries": 0,
                        "agents": [{"id": "a1"}],
                    },
                    {
                        "name": "no-ca-file",
                        "base_url": tls_api.url,
                        "max_retries": 0,
                        "agents": [{"id": "a1"}],
                    },
                ],
                "poll": {"interval": "1h", "jitter": 0},
                "server": {"host": "127.0.0.1", "port": 0},
            }
        )
    )
    daemon = start_daemon(config, env=CLEAN_PROXY_ENV)
    refused = daemon.wait_for("poll_failed", workspace="wrong-password")
    assert (refused["reason"], refused["detail"]) == (
        "connection",
        "proxy refused the tunnel (HTTP 407: check the proxy's credentials)",
    )
    untrusted = daemon.wait_for("poll_failed", workspace="no-ca-file")
    assert (untrusted["reason"], untrusted["detail"]) == (
        "connection",
        "TLS certificate not trusted (add its CA with ca_file)",
    )
    wait_until(lambda: daemon.get("/readyz")[0] == 200, what="readiness")
    assert daemon.get("/healthz")[0] == 200
    for workspace in ("wrong-password", "no-ca-file"):
        assert (
            daemon.value(
                "elevenlabs_agent_link_poll_errors_total", workspace=workspace, reason="connection"
            )
            == 1
        )
    assert_no_password(daemon)
    assert daemon.stop() == 0
