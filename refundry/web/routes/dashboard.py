"""The operations dashboard of the desk: ``/desk/dashboard``.

The figures of services/operations/dashboard.py (those /metrics serves, shaped for charts),
each drawn as a bar chart in inline SVG on the server (refundry/web/charts.py: no script, no
charting library, nothing from a CDN) with a title and a description, and the same figures as
a table beside it. Agents and admins see it (services/access.py, ``operations.dashboard``);
anyone else is sent to the desk's sign-in.
"""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from refundry.api.deps import ContextDep
from refundry.services.operations.dashboard import operations_dashboard
from refundry.web.charts import bar_chart
from refundry.web.pages import page_router
from refundry.web.session import session_reaching
from refundry.web.templating import render

__all__ = ["router"]

router = page_router()


@router.get("/desk/dashboard")
def dashboard_page(request: Request, ctx: ContextDep) -> Response:
    actor = session_reaching(ctx, request, "operations.dashboard")
    if actor is None:
        return RedirectResponse("/desk/signin", status_code=303)
    board = operations_dashboard(ctx.engine, actor)
    charts = {
        "refund_time": bar_chart([(str(b.at_most or ""), b.cases) for b in board.refund_time]),
        "stages": bar_chart([(s.stage, s.mean_seconds) for s in board.stages]),
        "auto": bar_chart(
            [("auto", board.auto_approved), ("other", board.cases - board.auto_approved)]
        ),
        "clawbacks": bar_chart([(f"{c.kind}:{c.currency}", c.total) for c in board.clawbacks]),
        "reasons": bar_chart(list(board.refund_rate.items())),
        "merchants": bar_chart([(m.merchant_id, m.rate) for m in board.merchants]),
    }
    return render(request, "desk/dashboard.html", board=board, charts=charts)
