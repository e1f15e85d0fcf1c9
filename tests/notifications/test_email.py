"""SmtpEmailSender against a real SMTP server (aiosmtpd on a loopback port)."""

from __future__ import annotations

import smtplib

import pytest

from refundry.adapters.email import SmtpEmailSender, message_id_for
from tests.notifications.conftest import PASSWORD, USER, SmtpServer

SUBJECT = "退款已到账"
BODY = "订单O-1的退款¥1,234.50已退回原支付方式，请注意查收。\n第二行"


def _sender(server: SmtpServer, **kw: object) -> SmtpEmailSender:
    return SmtpEmailSender(server.host, server.port, sender="shop@refundry.test", **kw)  # type: ignore[arg-type]


def test_chinese_subject_and_body_arrive_intact(smtp_server: SmtpServer) -> None:
    _sender(smtp_server).send(to="li@example.com", subject=SUBJECT, body=BODY, key="notify:r1:0")
    [msg] = smtp_server.mailbox.messages
    assert msg["Subject"] == SUBJECT
    assert msg["From"] == "shop@refundry.test"
    assert msg["To"] == "li@example.com"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    # text/plain in MIME canonical form: CRLF line breaks
    assert msg.get_content().replace("\r\n", "\n").rstrip("\n") == BODY
    assert smtp_server.mailbox.envelopes == [("shop@refundry.test", ["li@example.com"])]


def test_message_id_is_derived_from_the_key(smtp_server: SmtpServer) -> None:
    sender = _sender(smtp_server)
    for key in ("notify:r1:0", "notify:r1:0", "notify:r1:1"):
        sender.send(to="li@example.com", subject="s", body="b", key=key)
    ids = [m["Message-ID"] for m in smtp_server.mailbox.messages]
    assert ids[0] == ids[1] == message_id_for("notify:r1:0", "refundry.test")
    assert ids[2] != ids[0]
    assert ids[0].startswith("<") and ids[0].endswith("@refundry.test>")


def test_login(smtp_server: SmtpServer) -> None:
    _sender(smtp_server, username=USER, password=PASSWORD).send(
        to="li@example.com", subject="s", body="b", key="k"
    )
    assert len(smtp_server.mailbox.messages) == 1
    with pytest.raises(smtplib.SMTPAuthenticationError):
        _sender(smtp_server, username=USER, password="wrong").send(
            to="li@example.com", subject="s", body="b", key="k2"
        )


def test_starttls_refused_by_a_server_without_it(smtp_server: SmtpServer) -> None:
    with pytest.raises(smtplib.SMTPNotSupportedError):
        _sender(smtp_server, starttls=True).send(to="a@b.c", subject="s", body="b", key="k")
    assert smtp_server.mailbox.messages == []


def test_temporary_refusal_raises(smtp_server: SmtpServer) -> None:
    smtp_server.mailbox.fail_next = 1
    with pytest.raises(smtplib.SMTPDataError):
        _sender(smtp_server).send(to="a@b.c", subject="s", body="b", key="k")


def test_unreachable_server_raises() -> None:
    sender = SmtpEmailSender("127.0.0.1", 1, sender="shop@refundry.test", timeout=2)
    with pytest.raises(OSError):
        sender.send(to="a@b.c", subject="s", body="b", key="k")


def test_username_needs_a_password() -> None:
    with pytest.raises(ValueError):
        SmtpEmailSender("127.0.0.1", 25, sender="s@x.y", username="u")
