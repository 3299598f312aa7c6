"""Egress: `proxy:` and `ca_file:` in the config, the proxy chosen from the environment as Go's
`ProxyFromEnvironment` chooses, and the real client through a real forward proxy on loopback
(plain HTTP in absolute form, HTTPS through CONNECT) to the stand-in API, over TLS signed by a
private CA (tests/proxy.py, tests/certs.py)."""

from __future__ import annotations

import asyncio
import base64
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from monitor.config.errors import ConfigError
from monitor.config.keys import read_api_key
from monitor.config.loading import load_config, parse_config
from monitor.egress import Route, route_for
from monitor.elevenlabs.client import ClientSettings, ElevenLabsClient
from monitor.elevenlabs.pool import client_settings
from monitor.model import LinkAnswer, PollFailure, PollOutcome, Reason
from monitor.runtime.wiring import Runtime
from tests.certs import PROXIED_HOST, PrivateCa, make_ca
from tests.cli import run_cli
from tests.conftest import CANARY_KEY
from tests.fakeapi import FakeApi, expires
from tests.proxy import ForwardProxy, TlsFront
from tests.standin import StandIn, link

PASSWORD = "hunter2-p@ss:w/rd"  # needs percent-encoding in a URL; must never be shown
USER = "monitor"
UNTRUSTED = "TLS certificate not trusted (add its CA with ca_file)"
PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUEST_METHOD",
)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCa:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def api() -> Iterator[StandIn]:
    standin = StandIn(CANARY_KEY)
    standin.set("a1", link("tok_egress", time.time() + 30 * 86400))
    yield standin
    standin.close()


@pytest.fixture(scope="module")
def tls_api(api: StandIn, ca: PrivateCa) -> Iterator[TlsFront]:
    """The stand-in over HTTPS, with a certificate the private CA signed."""
    with TlsFront(api.url, ca) as front:
        yield front


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy(credentials=(USER, PASSWORD), hosts={PROXIED_HOST: "127.0.0.1"}) as server:
        yield server


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: never the proxy of the machine running the tests."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def poll(base_url: str, **egress: Any) -> PollOutcome:
    """One poll of agent a1 by the real client, with its real transport."""

    async def scenario() -> PollOutcome:
        # A timeout of 5 s, 2 in flight, 100 a second, no retry.
        client = ElevenLabsClient(ClientSettings(base_url, 5, 2, 100, 0, **egress), CANARY_KEY)
        try:
            return await client.get_link("a1")
        finally:
            await client.aclose()

    return asyncio.run(scenario())


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the config -------------------------------------------------------------------------------


def write(directory: Path, text: str) -> Path:
    path = directory / "config.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def single(directory: Path, **api: str) -> Path:
    lines = "".join(f"  {key}: '{value}'\n" for key, value in api.items())
    return write(
        directory,
        "elevenlabs:\n  base_url: http://127.0.0.1:9\n"
        + lines
        + "agents:\n  - id: a1\nserver:\n  host: 127.0.0.1\n  port: 0\n",
    )


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (f"ftp://{USER}:{PASSWORD}@proxy:21", "must start with http:// or https://"),
        (f"{USER}:{PASSWORD}@proxy.internal:3128", "must start with http:// or https://"),
        (f"socks5://{USER}:{PASSWORD}@proxy:1080", "SOCKS proxies are not supported"),
        (f"http://{USER}:hunter2@", "has no host"),
        (f"http://{USER}:{PASSWORD}@proxy:3128", "need percent-encoding"),
        (f"http://{USER}:{PASSWORD}@proxy:99999", "port that is not a number from 1 to 65535"),
        (f"http://{USER}:{PASSWORD}@proxy:0", "port that is not a number from 1 to 65535"),
        (f"http://{USER}:hunter2@proxy:3128/squid", "has a path, query or fragment"),
        (f"http://{USER}:hunter2 x@proxy:3128", "without spaces or control characters"),
    ],
)
def test_a_bad_proxy_is_one_line_that_never_shows_the_value(
    tmp_path: Path, value: str, says: str
) -> None:
    done = run_cli("validate-config", "--config", str(single(tmp_path, proxy=value)))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {tmp_path / 'config.yaml'}:3: elevenlabs.proxy: ")
    assert says in line
    assert "hunter2" not in done.stderr + done.stdout
    assert USER not in line


def test_a_bad_proxy_on_a_workspace_names_the_workspace(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        workspaces:
          - name: prod
            agents: [{{id: a1}}]
          - name: eu
            proxy: "gopher://{USER}:{PASSWORD}@proxy:70"
            agents: [{{id: a2}}]
        """,
    )
    done = run_cli("validate-config", "--config", str(path))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert ": workspaces[1].proxy: must start with http:// or https://" in line
    assert "hunter2" not in line


def test_a_proxy_with_credentials_is_valid_and_never_in_a_repr(tmp_path: Path) -> None:
    url = f"https://{USER}:hunter2secret@proxy.internal:3129"
    config = load_config(single(tmp_path, proxy=url))
    (workspace,) = config.resolved_workspaces()
    assert workspace.proxy == url
    settings = client_settings(workspace)
    assert settings.proxy == url
    for shown in (repr(config), repr(workspace), repr(settings), str(settings)):
        assert "hunter2secret" not in shown


@pytest.mark.parametrize("command", ["validate-config", "run", "check"])
def test_a_missing_ca_file_is_one_line_naming_the_path(tmp_path: Path, command: str) -> None:
    done = run_cli(
        command, "--config", str(single(tmp_path, ca_file="corp-ca.pem")), key=CANARY_KEY
    )
    assert done.returncode == (3 if command == "check" else 2)
    assert done.stderr == (
        f"error: {tmp_path / 'config.yaml'}:3: elevenlabs.ca_file: cannot use "
        f"{tmp_path / 'corp-ca.pem'} as a CA bundle: No such file or directory\n"
    )


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "holds no PEM certificate"),
        (b"just some text\n", "holds no PEM certificate"),
        (b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", "no PEM"),
        (b"\x30\x82\x01\x0a\xff\xfe", "not a PEM file"),
        (None, "Is a directory"),
    ],
)
def test_a_ca_file_without_a_certificate_is_one_line(
    tmp_path: Path, content: bytes | None, says: str
) -> None:
    bundle = tmp_path / "bundle.pem"
    if content is None:
        bundle.mkdir()
    else:
        bundle.write_bytes(content)
    done = run_cli("validate-config", "--config", str(single(tmp_path, ca_file=str(bundle))))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        f"error: {tmp_path / 'config.yaml'}:3: elevenlabs.ca_file: cannot use {bundle} "
        "as a CA bundle: "
    )
    assert says in line


def test_a_relative_ca_file_resolves_against_the_config_directory(
    tmp_path: Path, ca: PrivateCa
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "corp-ca.pem").write_bytes(ca.ca_file.read_bytes())
    path = single(conf, ca_file="corp-ca.pem")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_cli("validate-config", "--config", str(path), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    (workspace,) = load_config(path).resolved_workspaces()
    assert workspace.ca_file == conf / "corp-ca.pem"
    assert client_settings(workspace).ca_file == str(conf / "corp-ca.pem")


def test_a_config_without_a_file_behind_it_reads_no_ca_file() -> None:
    # parse_config alone (no config directory) keeps the path as given, unread.
    config = parse_config("elevenlabs: {ca_file: nowhere.pem}\nagents: [{id: a1}]\n")
    assert config.elevenlabs is not None
    assert config.elevenlabs.ca_file == Path("nowhere.pem")


# --- the route: Go's ProxyFromEnvironment -------------------------------------------------------

HTTPS = "https://api.elevenlabs.io"
ENV_PROXY = "http://proxy.internal:3128"


@pytest.mark.parametrize(
    ("target", "environ", "proxy"),
    [
        # HTTPS_PROXY for https, HTTP_PROXY for http, no fallback from one to the other.
        (HTTPS, {"HTTPS_PROXY": ENV_PROXY}, ENV_PROXY),
        (HTTPS, {"HTTP_PROXY": ENV_PROXY}, None),
        ("http://api.example.com", {"HTTP_PROXY": ENV_PROXY}, ENV_PROXY),
        ("http://api.example.com", {"HTTPS_PROXY": ENV_PROXY}, None),
        # Upper case first, then lower case; an empty value is unset.
        (HTTPS, {"HTTPS_PROXY": ENV_PROXY, "https_proxy": "http://other:1"}, ENV_PROXY),
        (HTTPS, {"https_proxy": ENV_PROXY}, ENV_PROXY),
        (HTTPS, {"HTTPS_PROXY": "", "https_proxy": ENV_PROXY}, ENV_PROXY),
        # A value without a scheme is http://, as in Go.
        (HTTPS, {"HTTPS_PROXY": "proxy.internal:3128"}, ENV_PROXY),
        # Never localhost or a loopback address.
        ("https://localhost:8443", {"HTTPS_PROXY": ENV_PROXY}, None),
        ("http://127.0.0.1:8080", {"HTTP_PROXY": ENV_PROXY}, None),
        ("https://127.3.2.1", {"HTTPS_PROXY": ENV_PROXY}, None),
        ("https://[::1]:8443", {"HTTPS_PROXY": ENV_PROXY}, None),
        # ... but a name that only resolves to loopback is proxied (Go looks at the URL).
        (f"https://{PROXIED_HOST}", {"HTTPS_PROXY": ENV_PROXY}, ENV_PROXY),
        # NO_PROXY: a domain is itself and its subdomains; a leading dot or *. only the
        # subdomains; * everything; a port only that port; addresses and CIDR blocks.
        (HTTPS, {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "elevenlabs.io"}, None),
        (HTTPS, {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "api.elevenlabs.io"}, None),
        (
            "https://elevenlabs.io",
            {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": ".elevenlabs.io"},
            ENV_PROXY,
        ),
        (HTTPS, {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": ".elevenlabs.io"}, None),
        (HTTPS, {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "*.elevenlabs.io"}, None),
        (HTTPS, {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "notelevenlabs.io,io.x"}, ENV_PROXY),
        (HTTPS, {"HTTPS_PROXY": ENV_PROXY, "no_proxy": " x.org , API.ElevenLabs.IO "}, None),
        (HTTPS, {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "*"}, None),
        (HTTPS, {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "elevenlabs.io:443"}, None),
        (HTTPS, {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "elevenlabs.io:8443"}, ENV_PROXY),
        ("https://10.1.2.3", {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "10.0.0.0/8"}, None),
        ("https://11.1.2.3", {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "10.0.0.0/8"}, ENV_PROXY),
        ("https://10.1.2.3:8443", {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "10.1.2.3"}, None),
        ("https://[fd00::5]", {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "[fd00::5]:443"}, None),
        # Under CGI (REQUEST_METHOD set) HTTP_PROXY may come from a request header: ignored.
        ("http://api.example.com", {"HTTP_PROXY": ENV_PROXY, "REQUEST_METHOD": "GET"}, None),
        (HTTPS, {"HTTPS_PROXY": ENV_PROXY, "REQUEST_METHOD": "GET"}, ENV_PROXY),
    ],
)
def test_the_environment_chooses_the_proxy_as_go_does(
    target: str, environ: dict[str, str], proxy: str | None
) -> None:
    route = route_for(target, None, environ)
    assert route.problem is None
    assert route.proxy == proxy


def test_the_route_names_the_variable_it_came_from() -> None:
    assert route_for(HTTPS, None, {"https_proxy": ENV_PROXY}) == Route(ENV_PROXY, "https_proxy")
    assert route_for(HTTPS, None, {}) == Route()


@pytest.mark.parametrize("target", [HTTPS, "http://127.0.0.1:8080", "https://[::1]"])
def test_a_configured_proxy_carries_every_request(target: str) -> None:
    # As a Go client with Proxy: http.ProxyURL(u): loopback and NO_PROXY do not apply.
    environ = {"HTTPS_PROXY": "http://env:1", "HTTP_PROXY": "http://env:1", "NO_PROXY": "*"}
    assert route_for(target, "http://configured:3128", environ) == Route(
        "http://configured:3128", "proxy"
    )


def test_an_unusable_proxy_variable_is_a_problem_that_never_shows_the_value() -> None:
    route = route_for(HTTPS, None, {"HTTPS_PROXY": f"socks5://{USER}:{PASSWORD}@proxy:1080"})
    assert route.proxy is None
    assert route.problem == (
        "HTTPS_PROXY is not a usable proxy URL: SOCKS proxies are not supported: use an "
        "http:// or https:// proxy"
    )
    assert "hunter2" not in repr(route)


# --- the real client through the real proxy ---------------------------------------------------


def test_plain_http_goes_through_the_proxy_in_absolute_form(
    api: StandIn, proxy: ForwardProxy
) -> None:
    outcome = poll(api.url, proxy=proxy.url_with(USER, PASSWORD))
    assert isinstance(outcome, LinkAnswer)
    (seen,) = proxy.requests()
    assert seen.method == "GET"
    assert seen.target == f"{api.url}/v1/convai/agents/a1/link"
    assert seen.authorization == basic(USER, PASSWORD)


def test_https_goes_through_the_proxy_with_connect(
    tls_api: TlsFront, ca: PrivateCa, proxy: ForwardProxy
) -> None:
    outcome = poll(tls_api.url, proxy=proxy.url_with(USER, PASSWORD), ca_file=str(ca.ca_file))
    assert isinstance(outcome, LinkAnswer)
    (seen,) = proxy.requests()
    assert (seen.method, seen.target) == ("CONNECT", f"127.0.0.1:{tls_api.port}")
    assert seen.authorization == basic(USER, PASSWORD)


@pytest.mark.parametrize(
    ("proxy_variable", "no_proxy", "proxied"),
    [
        (("HTTPS_PROXY", "NO_PROXY"), "localhost,.internal", True),
        (("https_proxy", "no_proxy"), "egress.test", False),
    ],
)
def test_https_proxy_from_the_environment_is_followed_unless_no_proxy_names_the_host(
    tls_api: TlsFront,
    ca: PrivateCa,
    proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    proxy_variable: tuple[str, str],
    no_proxy: str,
    proxied: bool,
) -> None:
    # A name no DNS knows: only the proxy can reach it, so an answer proves the proxy was used.
    monkeypatch.setenv(proxy_variable[0], proxy.url_with(USER, PASSWORD))
    monkeypatch.setenv(proxy_variable[1], no_proxy)
    outcome = poll(f"https://{PROXIED_HOST}:{tls_api.port}", ca_file=str(ca.ca_file))
    if proxied:
        assert isinstance(outcome, LinkAnswer)
        assert [(s.method, s.target) for s in proxy.requests()] == [
            ("CONNECT", f"{PROXIED_HOST}:{tls_api.port}")
        ]
    else:
        assert isinstance(outcome, PollFailure)  # direct: the name does not resolve
        assert proxy.count() == 0


def test_a_loopback_api_is_never_reached_through_the_environments_proxy(
    api: StandIn, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url_with(USER, PASSWORD))
    assert isinstance(poll(api.url), LinkAnswer)
    assert proxy.count() == 0


def test_an_untrusted_certificate_is_a_connection_failure_that_names_ca_file(
    tls_api: TlsFront,
) -> None:
    outcome = poll(tls_api.url)
    assert isinstance(outcome, PollFailure)
    assert (outcome.reason, outcome.detail) == (Reason.CONNECTION, UNTRUSTED)


def test_ca_file_adds_the_private_ca_to_the_trusted_roots(tls_api: TlsFront, ca: PrivateCa) -> None:
    assert isinstance(poll(tls_api.url, ca_file=str(ca.ca_file)), LinkAnswer)


def test_a_certificate_for_another_host_is_a_connection_failure(
    tls_api: TlsFront, ca: PrivateCa
) -> None:
    # The certificate is for 127.0.0.1 and api.egress.test, not for `localhost`.
    outcome = poll(f"https://localhost:{tls_api.port}", ca_file=str(ca.ca_file))
    assert isinstance(outcome, PollFailure)
    assert (outcome.reason, outcome.detail) == (
        Reason.CONNECTION,
        "TLS certificate does not match the host",
    )


@pytest.mark.parametrize(
    ("refuse", "detail"),
    [
        (None, "proxy refused the tunnel (HTTP 407: check the proxy's credentials)"),
        (403, "proxy refused the tunnel (HTTP 403: the proxy does not allow this host)"),
    ],
)
def test_a_proxy_that_refuses_the_tunnel_is_a_connection_failure(
    tls_api: TlsFront, ca: PrivateCa, proxy: ForwardProxy, refuse: int | None, detail: str
) -> None:
    proxy.refuse = refuse  # None: the credentials below are wrong, 407
    outcome = poll(
        tls_api.url, proxy=proxy.url_with(USER, "wrong-hunter2"), ca_file=str(ca.ca_file)
    )
    assert isinstance(outcome, PollFailure)
    assert (outcome.reason, outcome.detail) == (Reason.CONNECTION, detail)
    assert "hunter2" not in repr(outcome)
    (seen,) = proxy.requests()
    assert seen.method == "CONNECT"
    assert seen.authorization == basic(USER, "wrong-hunter2")


def test_a_proxy_that_wants_credentials_for_plain_http_is_a_connection_failure(
    api: StandIn, proxy: ForwardProxy
) -> None:
    outcome = poll(api.url, proxy=proxy.url)
    assert isinstance(outcome, PollFailure)
    assert (outcome.reason, outcome.detail) == (
        Reason.CONNECTION,
        "proxy refused the request (HTTP 407: check the proxy's credentials)",
    )
    assert proxy.requests()[0].authorization is None


def test_a_proxy_that_is_not_there_is_a_connection_failure(tls_api: TlsFront) -> None:
    outcome = poll(tls_api.url, proxy=f"http://{USER}:hunter2@127.0.0.1:{closed_port()}")
    assert isinstance(outcome, PollFailure)
    assert (outcome.reason, outcome.detail) == (Reason.CONNECTION, "cannot connect to the proxy")


def test_an_unusable_proxy_variable_fails_each_request(
    api: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"socks5h://{USER}:hunter2@proxy:1080")
    outcome = poll(f"https://{PROXIED_HOST}")
    assert isinstance(outcome, PollFailure)
    assert outcome.reason is Reason.CONNECTION
    assert outcome.detail.startswith("HTTPS_PROXY is not a usable proxy URL: SOCKS")
    assert "hunter2" not in outcome.detail


def test_a_ca_file_gone_after_the_config_was_loaded_fails_each_request(
    tls_api: TlsFront, tmp_path: Path
) -> None:
    gone = tmp_path / "gone.pem"
    outcome = poll(tls_api.url, ca_file=str(gone))
    assert isinstance(outcome, PollFailure)
    assert (outcome.reason, outcome.detail) == (
        Reason.CONNECTION,
        f"ca_file {gone}: No such file or directory",
    )


# --- reload -------------------------------------------------------------------------------------


def test_a_reload_replaces_the_client_on_new_egress_and_keeps_it_on_a_bad_ca_file(
    tmp_path: Path, ca: PrivateCa, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", CANARY_KEY)
    (tmp_path / "ca.pem").write_bytes(ca.ca_file.read_bytes())
    path = single(tmp_path, ca_file="ca.pem")
    fake = FakeApi()
    fake.set("a1", expires(None))
    runtime = Runtime(
        load_config(path),
        lambda workspace: read_api_key(workspace, base=tmp_path),
        config_path=path,
        make_client=fake.client,
    )

    def settings() -> ClientSettings:
        client = runtime.clients.get("default")
        assert client is not None
        return client.settings

    async def main() -> None:
        runtime.start()
        first = settings()
        assert first.ca_file == str(tmp_path / "ca.pem")
        single(tmp_path, ca_file="ca.pem", proxy="http://proxy.internal:3128")
        assert await runtime.reload("test")
        assert settings().proxy == "http://proxy.internal:3128"
        assert settings() is not first
        single(tmp_path, ca_file="missing.pem", proxy="http://proxy.internal:3128")
        assert not await runtime.reload("test")  # the running config and client are kept
        assert settings().ca_file == str(tmp_path / "ca.pem")
        await runtime.stop()

    structlog.reset_defaults()  # loggers cached by an earlier configure would bypass capture
    with structlog.testing.capture_logs() as logged:
        asyncio.run(main())
    (failed,) = [line for line in logged if line["event"] == "config_reload_failed"]
    assert failed["problems"] == [
        f"{path}:3: elevenlabs.ca_file: cannot use {tmp_path / 'missing.pem'} as a CA bundle: "
        "No such file or directory"
    ]
    assert not runtime.health.config_reload_ok


def test_a_proxy_url_typed_as_a_key_is_named_without_its_password(tmp_path: Path) -> None:
    """The field path of an unknown key quotes the key: a proxy URL left as a key must not
    bring its password to stderr or to the reload log."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "elevenlabs:\n  http://u:S3cretPW@h:3128: 1\n  'ftp://a:S3cretPW@h': 2\nagents: [{id: a}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "S3cretPW" not in str(caught.value)
    assert "S3cretPW" not in "".join(caught.value.all_problems)
    assert f"{path}:2: elevenlabs.http://[REDACTED]@h:3128: unknown key" in str(caught.value)
