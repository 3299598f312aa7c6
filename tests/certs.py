"""A private test CA and a server certificate it signed, made with the `openssl` command."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# The names the server certificate is valid for: the loopback address, and a name no DNS
# knows that only tests/proxy.py's ForwardProxy resolves (to reach it through the proxy).
PROXIED_HOST = "api.egress.test"
SERVER_NAMES = f"IP:127.0.0.1,DNS:{PROXIED_HOST}"


@dataclass(frozen=True)
class PrivateCa:
    ca_file: Path  # the CA's certificate (PEM): what `ca_file:` names
    cert_file: Path  # the server's certificate, signed by the CA
    key_file: Path  # the server's private key


def make_ca(directory: Path) -> PrivateCa:
    """A CA (`ca.pem`) and a server certificate for SERVER_NAMES it signed, in `directory`."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make the test CA")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_pem = directory / "ca.key", directory / "ca.pem"
    key, csr, pem = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "server.ext"
    extensions.write_text(
        f"subjectAltName={SERVER_NAMES}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str | Path) -> None:
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True, timeout=30)

    run(
        "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_pem, "-days", "2",
        "-subj", "/CN=elevenlabs-link-monitor test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    run("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run(
        "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
        "-out", pem, "-days", "2", "-extfile", extensions,
    )  # fmt: skip
    return PrivateCa(ca_pem, pem, key)
