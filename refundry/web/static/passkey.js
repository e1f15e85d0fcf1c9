// Passkeys (WebAuthn) on refundry's pages: the one script the pages load, served from /static
// under the strict CSP (script-src 'self'; no inline code). A form with data-passkey="create"
// or "get" carries the server's options (JSON, py_webauthn's options_to_json) in data-options;
// its button asks the browser for a new passkey or for an answer, writes the result as JSON
// into the form's hidden "credential" field and posts the form. The server checks everything;
// the button is rendered disabled and enabled here once its handler is attached, so a click that
// comes before the script has run is not lost; without JavaScript (a <noscript> line) or
// WebAuthn the page says so and the other way (the SMS code, the password) stays on the page.
"use strict";

(function () {
  function fromB64url(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (c) {
      return { type: c.type, id: fromB64url(c.id), transports: c.transports };
    });
  }

  function creationOptions(o) {
    o.challenge = fromB64url(o.challenge);
    o.user.id = fromB64url(o.user.id);
    o.excludeCredentials = withIds(o.excludeCredentials);
    return o;
  }

  function requestOptions(o) {
    o.challenge = fromB64url(o.challenge);
    o.allowCredentials = withIds(o.allowCredentials);
    return o;
  }

  function asJson(cred) {
    var r = cred.response;
    var response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) response.userHandle = toB64url(r.userHandle);
    }
    return JSON.stringify({
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: response,
      authenticatorAttachment: cred.authenticatorAttachment || null,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    });
  }

  function say(form, text) {
    var status = form.querySelector("[data-passkey-status]");
    if (status) status.textContent = text;
  }

  function start(form) {
    var button = form.querySelector("[data-passkey-start]");
    if (!button) return;
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say(form, form.getAttribute("data-unsupported") || "");
      return;
    }
    button.addEventListener("click", function () {
      var options = JSON.parse(form.getAttribute("data-options"));
      var creating = form.getAttribute("data-passkey") === "create";
      var asked = creating
        ? navigator.credentials.create({ publicKey: creationOptions(options) })
        : navigator.credentials.get({ publicKey: requestOptions(options) });
      button.disabled = true;
      asked.then(
        function (cred) {
          form.querySelector("input[name=credential]").value = asJson(cred);
          form.submit();
        },
        function () {
          button.disabled = false;
          say(form, form.getAttribute("data-failed") || "");
        }
      );
    });
    button.disabled = false; // the page renders it disabled until this script has wired it
  }

  var forms = document.querySelectorAll("form[data-passkey]");
  for (var i = 0; i < forms.length; i++) start(forms[i]);
})();
