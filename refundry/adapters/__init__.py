"""Adapters: refundry's edges to the outside world (payment gateways; later logistics, notifiers).

Modules, each with its own ``__all__``:

* ``errors``               the adapter error tree (``gateway.*`` codes)
* ``gateway``              the ``PaymentGateway`` Protocol, its answers and webhook events
* ``gateway_sandbox``      ``SandboxGateway``: an in-process gateway that misbehaves on purpose
* ``gateway_http``         ``HttpGateway``: the Stripe-like REST client
* ``gateway_http_sandbox`` ``serve_sandbox_http``: the sandbox behind a real loopback HTTP server
* ``webhook_signing``      HMAC-SHA256 signing and verification of webhook bodies

Nothing is re-exported here, so importing one adapter never starts loading the others.
"""
