"""The route class of every API and page router: a sync endpoint costs one thread-pool hop.

FastAPI runs a plain ``def`` endpoint on its thread pool and then, because the endpoint is not
a coroutine, serializes its answer on the thread pool too: two hops (each a hand-off between
the event loop and a worker thread, two context switches and a wake-up) per request, on top of
one per sync dependency. refundry's endpoints are sync (the services use SQLAlchemy's sync
engine), so ``OneHopRoute`` wraps each one in a coroutine that awaits it on the thread pool:
FastAPI then sees a coroutine, and validates and serializes the answer on the event loop. The
endpoint still never blocks the loop; the answer is the same; the serialization hop is gone.

An endpoint that returns an instance of exactly its ``response_model`` is answered with that
model's JSON as it stands: FastAPI would dump it to a dict, validate the dict into a second
model and dump that (for a page of twenty cases, most of the request's time outside the
store). The model was validated when the endpoint built it, so the JSON is the same (by alias,
as FastAPI writes it; tests/api/test_routing.py compares the two). Not for a route that takes
a ``Response`` to set a status or headers on, nor one with ``response_model_exclude…`` or
``include`` options or its own response class: FastAPI answers those as before.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

__all__ = ["Answers", "OneHopRoute", "answers_of"]


@dataclass(frozen=True, slots=True)
class Answers:
    """The model a route answers as it stands, and the status it answers with."""

    model: type[BaseModel]
    status: int

    def json(self, result: BaseModel) -> Response:
        body = self.model.__pydantic_serializer__.to_json(result, by_alias=True)
        return Response(body, status_code=self.status, media_type="application/json")


# Route options under which FastAPI reshapes the answer: such a route is left to FastAPI.
_RESHAPING = (
    "response_model_include",
    "response_model_exclude",
    "response_model_exclude_unset",
    "response_model_exclude_defaults",
    "response_model_exclude_none",
)


def answers_of(signature: inspect.Signature, options: dict[str, Any]) -> Answers | None:
    """How a route with these ``options`` (APIRoute's keyword arguments) answers its model as
    it stands, or None when FastAPI must answer it."""
    model = options.get("response_model")
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    if any(options.get(option) for option in _RESHAPING):
        return None
    if not isinstance(options.get("response_class", DefaultPlaceholder(None)), DefaultPlaceholder):
        return None
    for parameter in signature.parameters.values():
        kind = parameter.annotation
        if isinstance(kind, type) and issubclass(kind, Response):
            return None  # the endpoint sets the status or headers on it
    status = options.get("status_code")
    return Answers(model, status if isinstance(status, int) else 200)


def _on_the_thread_pool(
    endpoint: Callable[..., Any], signature: inspect.Signature, answers: Answers | None
) -> Callable[..., Any]:
    @functools.wraps(endpoint)
    async def awaited(*args: Any, **kwargs: Any) -> Any:
        result = await run_in_threadpool(endpoint, *args, **kwargs)
        if answers is not None and type(result) is answers.model:
            return answers.json(result)
        return result

    # The endpoint's own signature: FastAPI reads parameters, their dependencies and the
    # return type from it.
    awaited.__signature__ = signature  # type: ignore[attr-defined]
    return awaited


class OneHopRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if inspect.isfunction(endpoint) and not inspect.iscoroutinefunction(endpoint):
            # annotations evaluated in the endpoint's module (the route modules use ``from
            # __future__ import annotations``)
            signature = inspect.signature(endpoint, eval_str=True)
            endpoint = _on_the_thread_pool(endpoint, signature, answers_of(signature, kwargs))
        super().__init__(path, endpoint, **kwargs)
