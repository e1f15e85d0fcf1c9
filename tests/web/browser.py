"""A real server and a real browser for tests/web: uvicorn serving ``create_app`` in a
thread on a loopback port (the same app ``refundry serve`` runs), the worker beside it, and
Debian's Chromium driven by Playwright. No browser is ever downloaded: the executable is
``/usr/bin/chromium`` (``.ci/run`` installs the package when it is missing)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvicorn
from playwright.sync_api import Browser, Page

from refundry.worker import Worker

if TYPE_CHECKING:
    from tests.web.conftest import Shop

CHROMIUM = os.environ.get("REFUNDRY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    shop: Shop
    base: str


def new_page(
    browser: Browser, locale: str, width: int, *, js: bool = True, axe: bool = False
) -> Page:
    """A page in a fresh context: ``locale`` asked by Accept-Language, ``width`` px wide.
    ``axe``: the context lets the test inject axe-core despite the pages' CSP."""
    context = browser.new_context(
        viewport={"width": width, "height": 900},
        locale=locale,
        extra_http_headers={"Accept-Language": f"{locale},en;q=0.5"},
        java_script_enabled=js,
        bypass_csp=axe,
    )
    context.set_default_timeout(15_000)
    return context.new_page()


@contextmanager
def serving(shop: Shop, *, port: int | None = None, host: str = "127.0.0.1") -> Iterator[Live]:
    """The shop's app on a real HTTP port (``port``, or a free one), and its worker, until the
    block ends; ``host`` is the name the pages are browsed by (passkeys need ``localhost``)."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(shop.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    serve = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    serve.start()
    runtime = shop.app.state.ctx.runtime
    worker = Worker(desk=runtime.desk, relay=runtime.relay(), clock=runtime.clock, name="w-web")
    stop = threading.Event()
    work = threading.Thread(
        target=worker.run_forever,
        kwargs={"interval": 0.2, "stop": stop.is_set},
        name="worker",
        daemon=True,
    )
    work.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Live(shop=shop, base=f"http://{host}:{port}")
    finally:
        stop.set()
        server.should_exit = True
        serve.join(timeout=10)
        work.join(timeout=10)
