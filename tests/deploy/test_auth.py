"""Token and TLS between robot and policy server, over real loopback sockets (issue #24).

The TLS certificate is made for the test with the ``openssl`` command line (or skipped, with
the reason, on a machine without it): the server only ever uses certificate files it is given.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_server import META, EchoPolicy, call, open_client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from uio2_robot.deploy.auth import ClientAuth, ServerAuth, read_token
from uio2_robot.deploy.client import ClientError, RemotePolicyClient
from uio2_robot.deploy.server import PolicyServer, ServerThread

TOKEN = "robot-lab-token-0123456789"


def _server(auth: ServerAuth, host: str = "127.0.0.1") -> PolicyServer:
    return PolicyServer(lambda: EchoPolicy([]), META, host=host, auth=auth)


def test_public_host_needs_a_token_or_an_explicit_opt_out() -> None:
    for host in ("0.0.0.0", "::", "192.0.2.7"):
        with pytest.raises(ValueError, match=f"refusing to serve on {host} without auth"):
            _server(ServerAuth(), host)
        _server(ServerAuth(token=TOKEN), host)  # constructed, never started: no socket opened
        _server(ServerAuth(allow_unauthenticated=True), host)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        _server(ServerAuth(), host)
    with pytest.raises(ValueError, match="at least 16"):
        ServerAuth(token="short")


def test_serve_command_refuses_0000_without_a_token() -> None:
    from uio2_robot.cli import main

    assert main(["serve", "policy=random", "host=0.0.0.0", "duration_s=0.1"]) == 2


def test_token_is_required_and_checked(tmp_path: Path) -> None:
    with ServerThread(_server(ServerAuth(token=TOKEN))) as t:
        with pytest.raises(InvalidStatus, match="401"):
            open_client(t.url)
        with pytest.raises(InvalidStatus, match="401"):
            connect(t.url, proxy=None, additional_headers={"Authorization": "Bearer wrong"})
        with connect(
            t.url, proxy=None, additional_headers={"Authorization": f"Bearer {TOKEN}"}
        ) as ws:
            assert call(ws, {"type": "hello"})["type"] == "metadata"
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        robot = RemotePolicyClient(t.url, auth=ClientAuth(token=read_token(str(token_file))))
        try:
            assert robot.connect(5.0).policy == "echo"
        finally:
            robot.close()
        stranger = RemotePolicyClient(t.url)
        try:
            with pytest.raises(ClientError, match="401"):
                stranger.connect(1.0)
        finally:
            stranger.close()
        assert t.server.stats.unauthorized >= 3


@pytest.fixture
def cert(tmp_path: Path) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command on this machine to make a test certificate")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(crt), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(crt), str(key)


def test_tls_with_the_users_certificate(cert: tuple[str, str]) -> None:
    crt, key = cert
    auth = ServerAuth(token=TOKEN, tls_cert=crt, tls_key=key)
    with ServerThread(_server(auth)) as t:
        assert t.url.startswith("wss://")
        robot = RemotePolicyClient(t.url, auth=ClientAuth(token=TOKEN, tls_ca=crt))
        try:
            meta = robot.connect(5.0)
            assert meta.policy == "echo"
            robot.begin_episode(["tls"], None, timeout_s=5.0)
        finally:
            robot.close()
        untrusting = RemotePolicyClient(t.url, auth=ClientAuth(token=TOKEN))  # system CAs only
        try:
            with pytest.raises(ClientError, match="CERTIFICATE_VERIFY_FAILED"):
                untrusting.connect(1.0)
        finally:
            untrusting.close()
        with pytest.raises(ValueError, match="not wss"):
            RemotePolicyClient(t.url.replace("wss", "ws"), auth=ClientAuth(tls_ca=crt))


def test_tls_files_are_checked(tmp_path: Path, cert: tuple[str, str]) -> None:
    crt, key = cert
    with pytest.raises(ValueError, match="both tls_cert and tls_key"):
        ServerAuth(tls_cert=crt)
    with pytest.raises(FileNotFoundError, match="tls_key"):
        ServerAuth(tls_cert=crt, tls_key=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="expected a PEM certificate"):
        ServerAuth(tls_cert=key, tls_key=key).server_ssl_context()
