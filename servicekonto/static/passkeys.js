/* Passkeys (WebAuthn) for forms marked data-passkey="register" or data-passkey="login".
 *
 * On submit: POST the form's data-options-url (CSRF token in X-CSRFToken) for the options,
 * run navigator.credentials.create()/get(), put the answer (JSON, base64url fields as
 * py_webauthn reads them) into the form's hidden "credential" field and submit the form.
 * Without JavaScript the form posts an empty credential and the server explains why.
 * No inline script anywhere: the CSP only allows scripts from 'self'.
 */
(function () {
  "use strict";

  function toBuffer(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBuffers(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBuffer(item.id), transports: item.transports };
    });
  }

  function creationOptions(options) {
    options.challenge = toBuffer(options.challenge);
    options.user.id = toBuffer(options.user.id);
    options.excludeCredentials = withBuffers(options.excludeCredentials);
    return { publicKey: options };
  }

  function requestOptions(options) {
    options.challenge = toBuffer(options.challenge);
    options.allowCredentials = withBuffers(options.allowCredentials);
    return { publicKey: options };
  }

  function asJSON(credential) {
    var response = credential.response;
    var out = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults
        ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toBase64url(response.clientDataJSON) }
    };
    if (credential.authenticatorAttachment) {
      out.authenticatorAttachment = credential.authenticatorAttachment;
    }
    if (response.attestationObject) {
      out.response.attestationObject = toBase64url(response.attestationObject);
      out.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      out.response.authenticatorData = toBase64url(response.authenticatorData);
      out.response.signature = toBase64url(response.signature);
      if (response.userHandle) { out.response.userHandle = toBase64url(response.userHandle); }
    }
    return JSON.stringify(out);
  }

  function setUp(form) {
    var kind = form.getAttribute("data-passkey");
    var status = form.querySelector("[data-passkey-status]");
    var button = form.querySelector("button[type=submit]");
    var input = form.querySelector("input[name=credential]");
    var token = form.querySelector("input[name=csrf_token]");
    var say = function (name) { if (status) { status.textContent = form.getAttribute("data-msg-" + name) || ""; } };

    if (!window.PublicKeyCredential || !navigator.credentials) {
      say("unsupported");
      if (button) { button.disabled = true; }
      return;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (button) { button.disabled = true; }
      say("working");
      fetch(form.getAttribute("data-options-url"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRFToken": token ? token.value : "" }
      }).then(function (response) {
        if (!response.ok) { throw new Error("options " + response.status); }
        return response.json();
      }).then(function (options) {
        return kind === "register"
          ? navigator.credentials.create(creationOptions(options))
          : navigator.credentials.get(requestOptions(options));
      }).then(function (credential) {
        input.value = asJSON(credential);
        form.submit();  /* does not fire "submit" again */
      }).catch(function (error) {
        say(error && error.name === "NotAllowedError" ? "cancelled" : "failed");
        if (button) { button.disabled = false; button.focus(); }
      });
    });
  }

  var forms = document.querySelectorAll("form[data-passkey]");
  for (var i = 0; i < forms.length; i++) { setUp(forms[i]); }
})();
