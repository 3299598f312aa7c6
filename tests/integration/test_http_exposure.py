"""The HTTP endpoints face the network: hostile clients cannot starve or change the daemon,
and TLS (with optional client certificates) protects them when asked."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.clients import address
from tests.conftest import ConfigWriter, canary_token, running_daemon, write_config_file
from tests.daemon import Daemon, wait_until
from tests.standin import StandIn, link
from tests.tooling import require_tool

StartDaemon = Callable[..., Daemon]


@pytest.fixture(scope="module")
def daemon(module_standin: StandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the tests below: they only read it, or hold connections they close."""
    module_standin.set("bot", link(canary_token("h"), None))
    path = tmp_path_factory.mktemp("daemon") / "config.yaml"
    with running_daemon(write_config_file(path, module_standin.url, ["bot"])) as started:
        wait_until(lambda: started.state_of("bot") == "ok")
        yield started


def test_slow_and_garbage_clients_do_not_block_a_scrape(daemon: Daemon) -> None:
    host, port = address(daemon)
    slow = []
    for _ in range(20):  # clients that send half a request line and stall
        sock = socket.create_connection((host, port), timeout=5)
        sock.sendall(b"GET /metr")
        slow.append(sock)
    garbage = socket.create_connection((host, port), timeout=5)
    garbage.sendall(b"\x16\x03\x01\x00\xff" + b"\x00" * 300 + b"\r\n\r\n")
    answer = garbage.recv(1024)
    assert answer.startswith(b"HTTP/1.1 400") or answer == b""
    huge_header = socket.create_connection((host, port), timeout=5)
    huge_header.sendall(
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    )
    # Served or refused, it gets a proper HTTP answer and the server carries on.
    assert huge_header.recv(1024).split(b" ")[1] in (b"200", b"400", b"431")
    code, text = daemon.get("/metrics")
    assert code == 200
    assert "elevenlabs_agent_link_state" in text
    for sock in [*slow, garbage, huge_header]:
        sock.close()


def test_many_connections_at_once_are_bounded_and_survived(daemon: Daemon) -> None:
    host, port = address(daemon)
    socks = [socket.create_connection((host, port), timeout=5) for _ in range(200)]
    for sock in socks:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answers = [sock.recv(64) for sock in socks]
    # Past the concurrency limit uvicorn answers 503 rather than queueing without bound.
    assert all(a.startswith((b"HTTP/1.1 200", b"HTTP/1.1 503")) for a in answers)
    for sock in socks:
        sock.close()
    wait_until(lambda: daemon.get("/healthz")[0] == 200)


def test_nothing_over_http_changes_the_daemon(daemon: Daemon) -> None:
    host, port = address(daemon)
    before = daemon.metrics_text().count("\n")
    for method, path in [
        ("POST", "/metrics"),
        ("PUT", "/"),
        ("DELETE", "/healthz"),
        ("POST", "/-/reload"),
        ("POST", "/api/v1/agents"),
        ("GET", "/../../etc/passwd"),
        ("GET", "/nope"),
    ]:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request(method, path, body=b"{}")
        status = conn.getresponse().status
        conn.close()
        assert status in (404, 405), (method, path, status)
    assert daemon.metrics_text().count("\n") == before
    assert not daemon.events("config_reloaded")


def _certificates(tmp: Path) -> dict[str, Path]:
    openssl = require_tool("openssl")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    files = {
        n: tmp / f"{n}"
        for n in (
            "ca.key",
            "ca.crt",
            "server.key",
            "server.csr",
            "server.crt",
            "client.key",
            "client.csr",
            "client.crt",
            "ext",
        )
    }
    (files["ext"]).write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        str(files["ca.key"]),
        "-out",
        str(files["ca.crt"]),
    )
    for who in ("server", "client"):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={who}",
            "-keyout",
            str(files[f"{who}.key"]),
            "-out",
            str(files[f"{who}.csr"]),
        )
        run(
            "x509",
            "-req",
            "-in",
            str(files[f"{who}.csr"]),
            "-CA",
            str(files["ca.crt"]),
            "-CAkey",
            str(files["ca.key"]),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(files["ext"]),
            "-out",
            str(files[f"{who}.crt"]),
        )
    return files


def test_tls_with_client_certificates(
    standin: StandIn, write_config: ConfigWriter, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    certs = _certificates(tmp_path)
    standin.set("bot", link(canary_token("tls"), None))
    daemon = start_daemon(
        write_config(
            ["bot"],
            server={
                "host": "127.0.0.1",
                "port": 0,
                "tls": {
                    "cert_file": str(certs["server.crt"]),
                    "key_file": str(certs["server.key"]),
                    "client_ca_file": str(certs["ca.crt"]),
                },
            },
        )
    )
    assert daemon.url.startswith("https://")
    host, port = address(daemon)
    context = ssl.create_default_context(cafile=str(certs["ca.crt"]))
    context.load_cert_chain(str(certs["client.crt"]), str(certs["client.key"]))

    def scrape(ctx: ssl.SSLContext) -> int:
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=5)
        try:
            conn.request("GET", "/metrics")
            return conn.getresponse().status
        finally:
            conn.close()

    assert scrape(context) == 200
    anonymous = ssl.create_default_context(cafile=str(certs["ca.crt"]))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        scrape(anonymous)
    # Plain HTTP on the TLS port gets nothing useful.
    plain = http.client.HTTPConnection(host, port, timeout=5)
    plain.request("GET", "/metrics")
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        plain.getresponse()


def test_bad_tls_files_stop_start_up_with_one_line(
    write_config: ConfigWriter, tmp_path: Path
) -> None:
    from tests.daemon import run_monitor

    path = write_config(
        ["bot"],
        server={
            "tls": {"cert_file": str(tmp_path / "nope.crt"), "key_file": str(tmp_path / "nope.key")}
        },
    )
    done = run_monitor("run", "--config", str(path), key="sk_x")
    assert done.returncode == 1
    assert done.stderr == "error: cannot load the TLS files: No such file or directory\n"
