"""Who may talk to a policy server: a shared token, and TLS from the user's certificate files.

Why: a server bound to ``0.0.0.0`` answered anyone on the network, and the robot trusts what it
answers. Loopback stays open (one machine, one user); any other host needs a token, or the user
says explicitly that the network is trusted (``allow_unauthenticated``). The token travels as
``Authorization: Bearer <token>`` in the websocket handshake and is compared in constant time;
TLS (``tls_cert`` + ``tls_key`` on the server, ``tls_ca`` on the robot for a self-signed
certificate) keeps it and the camera frames off the wire in clear. No certificate is ever made
here: the user brings their own.

Tokens are read from a file or the ``UIO2_ROBOT_TOKEN`` environment variable, never from the
command line, where ``ps`` would show them to every user of the machine.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

TOKEN_ENV = "UIO2_ROBOT_TOKEN"
MIN_TOKEN_CHARS = 16


def read_token(token_file: str | None) -> str | None:
    """The shared token from ``token_file`` (stripped), else ``$UIO2_ROBOT_TOKEN``, else None."""
    if token_file:
        path = Path(token_file)
        if not path.is_file():
            raise FileNotFoundError(f"token_file {path} does not exist")
        token = path.read_text().strip()
        if not token:
            raise ValueError(f"token_file {path} is empty; expected one line with the token")
        return token
    return os.environ.get(TOKEN_ENV) or None


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (a name other than localhost is not trusted)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_token(token: str | None) -> None:
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ValueError(
            f"the server token has {len(token)} characters; expected at least "
            f"{MIN_TOKEN_CHARS} (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
        )


@dataclass(frozen=True)
class ServerAuth:
    """The server side: token, opt-out, TLS certificate and key files."""

    token: str | None = None
    allow_unauthenticated: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        _check_token(self.token)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both tls_cert and tls_key (PEM files), or neither")
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"{name} {path} does not exist")

    @property
    def scheme(self) -> str:
        return "wss" if self.tls_cert else "ws"

    def check_host(self, host: str) -> None:
        """Refuse to listen beyond loopback without a token, unless explicitly allowed."""
        if is_loopback(host) or self.token or self.allow_unauthenticated:
            return
        raise ValueError(
            f"refusing to serve on {host} without authentication: anyone who can reach it "
            f"could drive the robot. Give a token (token_file=FILE or ${TOKEN_ENV}; robots send "
            "the same), or allow_unauthenticated=true if the network is trusted"
        )

    def authorized(self, header: str | None) -> bool:
        """Whether a handshake's ``Authorization`` header carries the token (or none is set)."""
        if self.token is None:
            return True
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer ") :].encode(), self.token.encode())

    def server_ssl_context(self) -> ssl.SSLContext | None:
        if self.tls_cert is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
        except ssl.SSLError as exc:
            raise ValueError(
                f"cannot use tls_cert={self.tls_cert} tls_key={self.tls_key}: {exc}; expected a "
                "PEM certificate and its private key"
            ) from None
        return ctx

    def describe(self) -> str:
        who = "token required" if self.token else "no token"
        return f"{who}, {'TLS' if self.tls_cert else 'no TLS'}"


@dataclass(frozen=True)
class ClientAuth:
    """The robot side: the token to send and the CA file that signed the server's certificate."""

    token: str | None = None
    tls_ca: str | None = None  # None: the system's trusted CAs (wss:// only)

    def __post_init__(self) -> None:
        _check_token(self.token)
        if self.tls_ca is not None and not Path(self.tls_ca).is_file():
            raise FileNotFoundError(f"tls_ca {self.tls_ca} does not exist")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def ssl_context(self, url: str) -> ssl.SSLContext | None:
        """A verifying TLS context for a ``wss://`` url (None for ``ws://``)."""
        if not url.startswith("wss://"):
            if self.tls_ca is not None:
                raise ValueError(f"tls_ca is set but the server url {url} is not wss://")
            return None
        return ssl.create_default_context(cafile=self.tls_ca)
