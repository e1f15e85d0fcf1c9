"""The page router and ``install``: the pages and their static files on the API's app.

A page route answers HTML, also when it refuses: a ``RefundryError`` becomes an error page
with the status refundry/api/problems.py gives its code (one mapping for both front ends),
and a visitor without a session is sent to the sign-in help page. Page routes stay out of
the OpenAPI document (they are not the API).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from refundry.api.problems import status_for
from refundry.api.routing import OneHopRoute
from refundry.domain.errors import RefundryError
from refundry.web import routes
from refundry.web.session import csrf_guard

__all__ = ["NotSignedIn", "install", "page_router"]

STATIC = Path(__file__).parent / "static"


class NotSignedIn(Exception):
    """A page that needs a session, visited without one."""


class PageRoute(OneHopRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            from refundry.web.templating import render

            try:
                return await handler(request)
            except NotSignedIn:
                return RedirectResponse("/signin", status_code=303)
            except RefundryError as error:
                status = status_for(error)
                return render(
                    request, "errors/error.html", status=status, status_code=status, error=error
                )

        return page


def page_router() -> APIRouter:
    """A router for one area's pages: HTML errors, CSRF checked on every form post."""
    return APIRouter(
        route_class=PageRoute, include_in_schema=False, dependencies=[Depends(csrf_guard)]
    )


def install(app: FastAPI) -> None:
    """Mount ``/static`` and include every ``refundry.web.routes`` module's ``router``."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for info in pkgutil.iter_modules(routes.__path__):
        module = importlib.import_module(f"{routes.__name__}.{info.name}")
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router)
