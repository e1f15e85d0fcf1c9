"""``request_threads``: while the app serves, its routes' thread pool holds that many threads
(anyio's default limiter of the serving loop): 4 by default, not anyio's 40."""

from __future__ import annotations

import pytest
from anyio import to_thread
from fastapi.testclient import TestClient

from refundry.api.app import create_app
from refundry.settings import Settings


def _threads(app_settings: Settings) -> int:
    app = create_app(app_settings)
    try:
        with TestClient(app) as client:  # the lifespan runs on the client's event loop
            portal = client.portal
            assert portal is not None

            async def tokens() -> int:
                return int(to_thread.current_default_thread_limiter().total_tokens)

            return portal.call(tokens)
    finally:
        app.state.ctx.engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_serving_loop_runs_routes_on_request_threads(db_url: str) -> None:
    url = db_url
    assert _threads(Settings(dev=True, database_url=url)) == 4
    assert _threads(Settings(dev=True, database_url=url, request_threads=3)) == 3
