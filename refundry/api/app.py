"""``create_app``: the FastAPI application over the services.

Routes live in ``refundry/api/routes/``, one module per resource; every module there with a
``router`` is included. Errors are mapped to problem+json in refundry/api/problems.py only.
"""

from __future__ import annotations

import gc
import importlib
import pkgutil
import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from refundry.adapters.clock import utc_now
from refundry.api import routes
from refundry.api.auth import read_token
from refundry.api.deps import ApiContext
from refundry.api.idempotency import IdempotencyMiddleware
from refundry.api.kept import KeptAnswers, KeptOrderAnswers
from refundry.api.limits import RequestLimits
from refundry.api.openapi import describe, operation_id
from refundry.api.previews import PreviewAnswers
from refundry.api.problems import (
    http_error,
    refundry_error,
    server_error,
    validation_error,
)
from refundry.api.request_log import RequestLog
from refundry.bootstrap import Runtime, build
from refundry.domain.errors import RefundryError
from refundry.services.ports import PaymentGateway, SmsSender
from refundry.services.tokens import RevocationList
from refundry.settings import Settings, load_settings
from refundry.web.kept_pages import KeptPageAnswers
from refundry.web.pages import install as install_pages

__all__ = ["UPLOAD_PATHS", "create_app"]

# The POSTs that carry photos, which take larger bodies (refundry/api/limits.py).
UPLOAD_PATHS = tuple(
    re.compile(p)
    for p in (
        r"/v1/cases/[^/]+/photos",
        r"/orders/[^/]+/request/preview",
        r"/cases/[^/]+/photos",
        r"/merchant/cases/[^/]+/inspect",
    )
)


@asynccontextmanager
async def _serving(app: FastAPI) -> AsyncIterator[None]:
    """While the app serves: the event loop's own connections for its one-row reads
    (refundry/store/loop_reads.py), opened on the loop that serves and closed with it."""
    reads = app.state.ctx.runtime.loop_reads
    await reads.open()
    # The routes that read the store run on the thread pool; more threads than this only
    # queue on the GIL and the store's connections (docs/configuration.md, request_threads).
    to_thread.current_default_thread_limiter().total_tokens = app.state.ctx.settings.request_threads
    if getattr(app.state, "freeze_heap", False):  # set by refundry serve's app factory
        # What is built by now (the app, its routes and schemas, the templates, the tables'
        # metadata, Babel's locale data) lives as long as the process: set apart from the
        # collector, a full collection walks only what the requests made, not the whole heap.
        gc.collect()
        gc.freeze()
    try:
        yield
    finally:
        await reads.close()


# The routers asked most, first: a request is matched against the routes in the order they
# were included (about 50 patterns were tried before a preview's), so the orders' and the
# cases' go first and the rest follow by name.
_FIRST = ("orders", "cases", "refunds", "health")


def _by_traffic(names: Iterable[str]) -> list[str]:
    rank = {name: n for n, name in enumerate(_FIRST)}
    return sorted(names, key=lambda name: (rank.get(name, len(_FIRST)), name))


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    sms: SmsSender | None = None,
    gateway: PaymentGateway | None = None,
    clock: Callable[[], datetime] = utc_now,
    schema_check: bool = True,
) -> FastAPI:
    """The app over ``runtime``, or over one built here from ``settings`` (default: the
    environment) by ``refundry.bootstrap.build``, with ``sms``/``gateway``/``clock`` replacing
    what the settings name (tests). ``schema_check=False`` serves a database that is not
    migrated (only the OpenAPI document is read from such an app)."""
    if runtime is None:
        runtime = build(
            settings or load_settings(),
            clock=clock,
            sms=sms,
            gateway=gateway,
            schema_check=schema_check,
        )
    settings = runtime.settings
    # FastAPIOffline: /docs and /redoc from installed files, no CDN (refundry/api/openapi.py)
    app: FastAPI = FastAPIOffline(
        title="refundry",
        version="1",
        summary="After-sales refunds that undo everything a purchase touched.",
        docs_url="/docs",
        redoc_url="/redoc",
        openapi_url="/openapi.json",
        static_url="/docs/assets",
        generate_unique_id_function=operation_id,
        lifespan=_serving,
    )
    app.state.ctx = ApiContext(
        engine=runtime.engine,
        settings=settings,
        desk=runtime.desk,
        sms=runtime.sms,
        gateway=runtime.gateway,
        clock=runtime.clock,
        runtime=runtime,
        revocations=RevocationList(runtime.engine),
        kept=KeptAnswers(settings.page_cache_entries),
    )
    app.add_exception_handler(RefundryError, refundry_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, server_error)
    for name in _by_traffic(info.name for info in pkgutil.iter_modules(routes.__path__)):
        module = importlib.import_module(f"{routes.__name__}.{name}")
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router)
    install_pages(app)  # refundry/web: the pages beside the API (docs/pages.md)

    documented = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(documented())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    keys = settings.token_secrets()

    def subject_of(headers: dict[bytes, bytes]) -> str | None:
        raw = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = raw.partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            actor = read_token(
                keys, token.strip(), now=runtime.clock(), current=settings.token_key_id
            )
        except RefundryError:
            return None
        return actor.tag

    app.add_middleware(
        IdempotencyMiddleware,
        engine=runtime.engine,
        subject_of=subject_of,
        ttl=timedelta(hours=settings.idempotency_ttl_hours),
        lease=timedelta(seconds=settings.idempotency_lease_seconds),
    )
    app.add_middleware(PreviewAnswers)  # inside the limits, outside idempotency: api/shortcuts.py
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        uploads=UPLOAD_PATHS,
        max_upload_bytes=settings.photo_max_bytes * settings.photo_max_per_case
        + settings.max_body_bytes,
    )
    app.add_middleware(KeptOrderAnswers)  # kept orders (API) and pages, answered inside
    app.add_middleware(KeptPageAnswers)  # the request log: refundry/api/kept.py
    app.add_middleware(RequestLog)
    if runtime.tracer is not None:
        from refundry.tracing import trace_app

        trace_app(app, runtime.tracer)
    return app
