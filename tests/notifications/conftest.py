"""A real SMTP server (aiosmtpd on a free loopback port) and a real Redis for the adapters.

Redis runs at REFUNDRY_TEST_REDIS (default redis://127.0.0.1:6379/0); without it the Redis
tests are skipped with one line saying so (under CI=true they fail instead). Each test gets its
own key prefix and its keys are deleted afterwards.
"""

from __future__ import annotations

import email
import email.policy
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

REDIS_URL = os.environ.get("REFUNDRY_TEST_REDIS", "redis://127.0.0.1:6379/0")
USER, PASSWORD = "shop", "s3cret"


class Mailbox:
    """An aiosmtpd handler keeping every message it accepted; ``fail_next`` answers
    ``451`` (try again later) to that many messages first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.fail_next = 0
        self.refused = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                self.refused += 1
                return "451 4.3.0 Mailbox busy, try again later"
            raw = cast(bytes, envelope.original_content or envelope.content)
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            self.messages.append(msg)
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


class SmtpServer:
    def __init__(self, mailbox: Mailbox, port: int) -> None:
        self.mailbox = mailbox
        self.host = "127.0.0.1"
        self.port = port


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on a free loopback port; AUTH PLAIN with USER/PASSWORD is
    offered (without TLS, loopback only) but not required."""
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticate,
        auth_require_tls=False,
        # smtplib falls back to AUTH LOGIN after a refused PLAIN, and aiosmtpd's LOGIN dialogue
        # does not take smtplib's initial response: offer PLAIN only
        auth_exclude_mechanism=["LOGIN"],
    )
    controller.start()
    try:
        yield SmtpServer(mailbox, port)
    finally:
        controller.stop()


def _redis_problem() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        return None
    except Exception as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@pytest.fixture(scope="session")
def redis_url() -> str:
    problem = _redis_problem()
    if problem is not None:
        message = f"Redis unavailable at {REDIS_URL}: {problem}. Set REFUNDRY_TEST_REDIS."
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: a missing server is a failure)")
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    import redis

    prefix = f"refundry-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
