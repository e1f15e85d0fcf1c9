"""SMS through Twilio's Messages API (``sms = "twilio"``), as Twilio documents it.

One message is ``POST {api}/2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded
``To`` (E.164), ``Body`` and either ``From`` (a Twilio number or alphanumeric sender) or
``MessagingServiceSid`` (an ``MG…`` id), authenticated with HTTP Basic ``AccountSid:AuthToken``.
Twilio answers 201 with the Message resource (``sid`` ``SM…``, ``status`` ``queued`` or
``accepted``), or an error body ``{"code", "message", "more_info", "status"}``:

    401 / 20003             credentials refused             SmsAuthFailed   sms.auth_failed
    429 / 20429             too many requests (Retry-After) SmsThrottled    sms.throttled
    400 / 21211, 21614 …    the number or message refused   SmsRejected     sms.rejected
    5xx, no connection      Twilio unreachable              SmsUnavailable  sms.unavailable
    no answer in time       outcome unknown                 SmsTimeout      sms.timeout

Twilio takes no idempotency key on this call: a retry after ``sms.timeout`` may text twice.
refundry's callers keep that window small — the channel notifier records each delivered key
and skips it on a retry (notifications/channels.py), and a one-time code that could not be
sent is withdrawn (services/customers/identity.py) so the customer simply asks again.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, urlencode

from refundry.adapters.http_client import JsonHttpClient
from refundry.domain.errors import RefundryError

__all__ = [
    "SmsAuthFailed",
    "SmsError",
    "SmsRejected",
    "SmsThrottled",
    "SmsTimeout",
    "SmsUnavailable",
    "TwilioSms",
]


class SmsError(RefundryError):
    """An SMS provider did not take the message."""

    code = "sms.error"


class SmsUnavailable(SmsError):
    code = "sms.unavailable"


class SmsTimeout(SmsError):
    code = "sms.timeout"


class SmsProtocolError(SmsError):
    code = "sms.protocol_error"


class SmsAuthFailed(SmsError):
    code = "sms.auth_failed"


class SmsThrottled(SmsError):
    code = "sms.throttled"


class SmsRejected(SmsError):
    code = "sms.rejected"


class TwilioSms(JsonHttpClient):
    """Twilio's Messages API. ``sender``: a number / alphanumeric id, or a Messaging Service
    ``MG…`` id."""

    peer = "Twilio"
    unavailable = SmsUnavailable
    timed_out = SmsTimeout
    protocol_error = SmsProtocolError

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        sender: str,
        api_url: str = "https://api.twilio.com",
        timeout: float = 10.0,
    ) -> None:
        super().__init__(api_url, timeout=timeout)
        self._account_sid = account_sid
        credentials = f"{account_sid}:{auth_token}".encode()
        self._authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
        self._sender = sender

    def send(self, *, phone: str, text: str, key: str) -> None:
        """Text ``text`` to ``phone``; raises an ``SmsError`` when Twilio does not take it.
        ``key`` (the caller's idempotency key) is not sent: Twilio has no field for it."""
        fields = {"To": phone, "Body": text}
        if self._sender.startswith("MG"):
            fields["MessagingServiceSid"] = self._sender
        else:
            fields["From"] = self._sender
        status, doc = self._call(
            "POST",
            f"/2010-04-01/Accounts/{quote(self._account_sid, safe='')}/Messages.json",
            body=urlencode(fields).encode(),
            headers={
                "Authorization": self._authorization,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        if status in (200, 201):
            if not (isinstance(doc, dict) and str(doc.get("sid", "")).startswith("SM")):
                raise SmsProtocolError(f"HTTP {status} without a message sid: {doc!r:.200}")
            return
        raise _error(status, doc)


def _error(status: int, doc: object) -> SmsError:
    code = doc.get("code") if isinstance(doc, dict) else None
    message = doc.get("message") if isinstance(doc, dict) else None
    what = (
        f"Twilio HTTP {status}"
        + (f" error {code}" if code else "")
        + (f": {message}" if message else "")
    )
    if status == 401 or code == 20003:
        return SmsAuthFailed(what)
    if status == 429 or code == 20429:
        return SmsThrottled(what)
    if status >= 500:
        return SmsUnavailable(what)
    return SmsRejected(what)
