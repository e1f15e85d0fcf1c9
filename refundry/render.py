"""Readable, Rich-rendered views of a plan (for `refundry plan --pretty` and `make demo`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from refundry.domain.plan_doc import PlanDoc

__all__ = ["bulk_dry_run_lines", "format_minor", "plan_panel"]

_MINOR_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "BHD": 3, "KWD": 3, "JOD": 3}

_SKIP_KEYS = {"type", "reason", "rule"}


def format_minor(amount: int, currency: str) -> str:
    """Integer minor units as a decimal string, by string arithmetic (no float ever)."""
    digits = _MINOR_DIGITS.get(currency, 2)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**digits)
    body = f"{whole:,}" + (f".{frac:0{digits}d}" if digits else "")
    return f"{sign}{body} {currency}"


def plan_panel(plan: PlanDoc, *, title: str | None = None) -> Panel:
    cur = plan["currency"]

    def money(value: int) -> str:
        return format_minor(value, cur)

    units = Table(title="Units refunded", expand=True, title_justify="left")
    for col in ("line", "sku", "qty", "units", "list", "paid"):
        units.add_column(col, justify="right" if col in ("qty", "list", "paid") else "left")
    for u in plan["units"]:
        span = f"{u['refunded_before'] + 1}..{u['refunded_after']} of {u['of']}"
        units.add_row(
            u["line_id"] + (" (gift)" if u["gift"] else ""),
            u["sku"],
            str(u["quantity"]),
            span,
            money(u["list"]),
            money(u["paid"]),
        )

    amount = Table(title="Amount", expand=True, title_justify="left", show_header=False)
    amount.add_column("part")
    amount.add_column("value", justify="right")
    a = plan["amount"]
    for key in ("goods", "give_backs", "shipping"):
        if a[key] or key == "goods":
            amount.add_row(key.replace("_", " "), money(a[key]))
    for d in plan["deductions"]:
        amount.add_row(Text(f"− {d['kind']} ({d['ref']})", style="red"), money(-d["amount"]))
    for key, value in (("carry", a["carry"]), ("rounding", a["rounding"])):
        if value:
            amount.add_row(key, money(value))
    amount.add_row(Text("total to refund", style="bold"), Text(money(a["total"]), style="bold"))

    tenders = Table(title="Money per tender", expand=True, title_justify="left")
    for col in ("tender", "kind", "refund", "points", "refunded after", "paid"):
        tenders.add_column(col, justify="left" if col in ("tender", "kind") else "right")
    for t in plan["tenders"]:
        tenders.add_row(
            t["tender_id"],
            t["kind"],
            money(t["amount"]),
            str(t["points"]) if t["kind"] == "points" else "",
            money(t["refunded_after"]),
            money(t["paid"]),
        )

    effects = Table(title="Effects", expand=True, title_justify="left")
    effects.add_column("effect")
    effects.add_column("details")
    effects.add_column("why")
    for e in plan["effects"]:
        if e["type"] == "refund_to_tender":
            continue
        details = ", ".join(
            f"{k}={v}" for k, v in sorted(e.items()) if k not in _SKIP_KEYS and v is not None
        )
        effects.add_row(e["type"], details, f"{e['reason']} [dim]({e['rule']})[/dim]")

    status = plan["status"]
    head = Text(f"{plan['order_id']} · {plan['request']['reason']} · ", style="bold")
    head.append(status, style="green" if status == "ready" else "bold red")
    if plan["manual_review"]:
        head.append(f"  excess {money(plan['manual_review']['excess'])}", style="red")
    parts: list[Any] = [head, units, amount, tenders]
    if effects.row_count:
        parts.append(effects)
    parts.append(Text(plan["input_hash"], style="dim"))
    return Panel(Group(*parts), title=title or "Refund plan", title_align="left")


def print_plan(plan: PlanDoc, *, title: str | None = None, console: Console | None = None) -> None:
    (console or Console()).print(plan_panel(plan, title=title))


def bulk_dry_run_lines(summary: dict[str, Any]) -> list[str]:
    """A bulk refund's dry run (services/bulk/dry_run.py's ``as_dict``) as lines of text."""
    out = [f"orders selected: {summary['orders']}", f"refunds: {summary['refunds']}"]
    for cur, total in sorted(summary["total"].items()):
        out.append(f"money back: {format_minor(total, cur)}")
        for kind, amount in sorted(summary["money"].get(cur, {}).items()):
            out.append(f"  to {kind} tenders: {format_minor(amount, cur)}")
        for kind, amount in sorted(summary["deductions"].get(cur, {}).items()):
            out.append(f"  deducted ({kind}): {format_minor(amount, cur)}")
    for what, n in sorted(summary["coupons"].items()):
        out.append(f"coupons {what}: {n}")
    for what, n in sorted(summary["points"].items()):
        out.append(f"points {what}: {n}")
    out.append(f"need manual review: {len(summary['manual_review'])}")
    out += [f"  {m['order_id']}: {m['why']}" for m in summary["manual_review"]]
    out.append(f"units left to open cases: {len(summary['held_by_case'])} orders")
    out += [f"  {h['order_id']}: {h['units']} units" for h in summary["held_by_case"]]
    for code, ids in sorted(summary["refused"].items()):
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        out.append(f"refused {code}: {len(ids)} ({shown})")
    return out
