"""The route class of every API and page router: a sync endpoint costs one thread-pool hop.

FastAPI runs a plain ``def`` endpoint on its thread pool and then, because the endpoint is not
a coroutine, serializes its answer on the thread pool too: two hops (each a hand-off between
the event loop and a worker thread, two context switches and a wake-up) per request, on top of
one per sync dependency. refundry's endpoints are sync (the services use SQLAlchemy's sync
engine), so ``OneHopRoute`` wraps each one in a coroutine that awaits it on the thread pool:
FastAPI then sees a coroutine, and validates and serializes the answer on the event loop. The
endpoint still never blocks the loop; the answer is the same; the serialization hop is gone.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

__all__ = ["OneHopRoute"]


def _on_the_thread_pool(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    # The endpoint's own signature with its annotations evaluated in its module (the route
    # modules use ``from __future__ import annotations``): FastAPI reads parameters, their
    # dependencies and the return type from it.
    signature = inspect.signature(endpoint, eval_str=True)

    @functools.wraps(endpoint)
    async def awaited(*args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(endpoint, *args, **kwargs)

    awaited.__signature__ = signature  # type: ignore[attr-defined]
    return awaited


class OneHopRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if inspect.isfunction(endpoint) and not inspect.iscoroutinefunction(endpoint):
            endpoint = _on_the_thread_pool(endpoint)
        super().__init__(path, endpoint, **kwargs)
