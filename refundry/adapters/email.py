"""Email over SMTP (``smtplib``): one connection per message, UTF-8 bodies, and a Message-ID
derived from the caller's key, so a message sent again after a crash is recognisably the same
one (mail clients and most providers collapse duplicates by Message-ID)."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

__all__ = ["SandboxEmail", "SentEmail", "SmtpEmailSender", "message_id_for"]


@dataclass(frozen=True, slots=True)
class SentEmail:
    to: str
    subject: str
    body: str
    key: str


class SandboxEmail:
    """Implements ``EmailSender`` without a server: keeps each message once per key (like a
    provider that collapses duplicates by Message-ID), for the demo and for shops that chose
    the sandbox explicitly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, SentEmail] = {}

    def send(self, *, to: str, subject: str, body: str, key: str) -> None:
        with self._lock:
            self._by_key.setdefault(key, SentEmail(to, subject, body, key))

    @property
    def sent(self) -> list[SentEmail]:
        with self._lock:
            return list(self._by_key.values())


def message_id_for(key: str, domain: str) -> str:
    """``<sha256(key)[:40]@domain>``: the same key always gives the same Message-ID."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
    return f"<{digest}@{domain}>"


class SmtpEmailSender:
    """Implements ``EmailSender``. ``starttls`` upgrades the connection (certificate checked
    against the system trust store) before ``username``/``password`` log in; errors
    (``smtplib.SMTPException``, ``OSError``) propagate for the caller to retry."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        self.host = host
        self.port = port
        self.sender = sender
        self.starttls = starttls
        self.username = username
        self.password = password
        self.timeout = timeout
        self.ssl_context = ssl_context
        _, at, domain = sender.rpartition("@")
        self.domain = domain if at and domain else "refundry.invalid"

    def build(self, *, to: str, subject: str, body: str, key: str) -> EmailMessage:
        """The message ``send`` would send: UTF-8 text/plain, the subject RFC 2047-encoded."""
        msg = EmailMessage(policy=SMTP)
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = message_id_for(key, self.domain)
        # base64 keeps Chinese text intact through relays that do not speak 8BITMIME
        msg.set_content(body, subtype="plain", charset="utf-8", cte="base64")
        return msg

    def send(self, *, to: str, subject: str, body: str, key: str) -> None:
        msg = self.build(to=to, subject=subject, body=body, key=key)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
            if self.username is not None and self.password is not None:
                smtp.login(self.username, self.password)
            smtp.send_message(msg)
