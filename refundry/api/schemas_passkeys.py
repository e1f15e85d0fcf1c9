"""The API's passkey bodies and answers (WebAuthn's JSON forms, base64url for binary).

A credential is what ``PublicKeyCredential.toJSON()`` gives in the browser (or the same shape
built by hand): ``id``, ``rawId``, ``type`` and the ``response``'s fields, each base64url.
The server checks everything else (services/passkeys.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from refundry.api.fields import OneLine

__all__ = [
    "PasskeyAssertion",
    "PasskeyAttestation",
    "PasskeyCreate",
    "PasskeyList",
    "PasskeyOptions",
    "PasskeyView",
]

B64url = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]*$", max_length=16384)]


class _Credential(BaseModel):
    # the browser adds fields over time (authenticatorAttachment, clientExtensionResults …)
    model_config = ConfigDict(extra="allow")

    id: B64url
    rawId: B64url  # WebAuthn's own names, as the browser sends them
    type: Literal["public-key"]


class AssertionResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    clientDataJSON: B64url
    authenticatorData: B64url
    signature: B64url
    userHandle: B64url | None = None


class AttestationResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    clientDataJSON: B64url
    attestationObject: B64url
    transports: list[Annotated[str, StringConstraints(max_length=20)]] = Field(
        default_factory=list, max_length=10
    )


class PasskeyAssertion(_Credential):
    """``navigator.credentials.get``'s answer."""

    response: AssertionResponse


class PasskeyAttestation(_Credential):
    """``navigator.credentials.create``'s answer."""

    response: AttestationResponse


class PasskeyOptions(BaseModel):
    """What to give the browser as ``publicKey`` (binary fields base64url: decode them, or
    use ``PublicKeyCredential.parseRequestOptionsFromJSON``/``…CreationOptionsFromJSON``)."""

    options: dict[str, Any]
    expires_in_seconds: int


class PasskeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: PasskeyAttestation
    name: OneLine = Field(default="", max_length=100)


class PasskeyView(BaseModel):
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


class PasskeyList(BaseModel):
    items: list[PasskeyView]
