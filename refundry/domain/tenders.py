"""Money per tender (SPEC §3.1) and the earned-points reversal that can reduce it (§3.2).

The step's amount is split over the tenders by largest remainder, weighted by what each has not
had back, so no tender is ever over-refunded and, with nothing deducted, every tender ends with
exactly what it paid. A points tender is paid in whole points. A points shortfall is then taken
from the cash tenders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from refundry.domain.customer import CustomerSnapshot
from refundry.domain.money import split_largest_remainder
from refundry.domain.order import Order, TenderKind
from refundry.domain.plan_types import Effect, TenderRefund
from refundry.domain.policy import Policy
from refundry.domain.reasons import say

__all__ = ["TenderSplit", "split_over_tenders"]


@dataclass(slots=True)
class TenderSplit:
    tenders: list[TenderRefund] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    shortfall_points: int = 0
    shortfall_money: int = 0
    rounding: int = 0  # minor units added by rounding a points tender up to a whole point
    excess: int = 0  # > 0: the deductions exceed the amount; nothing moves


def split_over_tenders(
    *,
    order: Order,
    policy: Policy,
    customer: CustomerSnapshot,
    moved_before: dict[str, int],
    total: int,
    points_due: int,
) -> TenderSplit:
    out = TenderSplit()
    tenders = order.tenders
    mpp = policy.minor_units_per_point
    remaining = [t.amount - moved_before.get(t.id, 0) for t in tenders]
    if total < 0:
        out.excess = -total
        shares = [0] * len(tenders)
    else:
        shares = split_largest_remainder(total, remaining)
    _whole_points(order, mpp, remaining, shares, out)

    returned_points = sum(
        shares[i] // mpp for i, t in enumerate(tenders) if t.kind is TenderKind.POINTS
    )
    if points_due:
        _reverse_earned(order, policy, customer, returned_points, points_due, out)
    if out.shortfall_money and out.excess:
        out.excess += out.shortfall_money  # nothing moves, so nothing can absorb it either
    elif out.shortfall_money:
        cash = [i for i, t in enumerate(tenders) if t.kind is not TenderKind.POINTS]
        cash_total = sum(shares[i] for i in cash)
        if cash_total < out.shortfall_money:
            out.excess = out.shortfall_money - cash_total
        else:
            cuts = split_largest_remainder(out.shortfall_money, [shares[i] for i in cash])
            for i, cut in zip(cash, cuts, strict=True):
                shares[i] -= cut
    if out.excess:
        shares = [0] * len(tenders)
        out.rounding = 0

    for i, t in enumerate(tenders):
        amount = shares[i]
        points = amount // mpp if t.kind is TenderKind.POINTS else 0
        out.tenders.append(
            TenderRefund(
                tender_id=t.id,
                kind=str(t.kind),
                amount=amount,
                points=points,
                refunded_after=moved_before.get(t.id, 0) + amount,
                paid=t.amount,
            )
        )
        if not amount:
            continue
        data: dict[str, int | str | bool | None] = {
            "tender_id": t.id,
            "kind": str(t.kind),
            "amount": amount,
        }
        if t.kind is TenderKind.POINTS:
            data["points"] = points
            out.effects.append(
                Effect(
                    "points_return_redeemed",
                    {"tender_id": t.id, "points": points},
                    reason=say("points.redeemed_back"),
                    rule="spec.3.2",
                )
            )
        out.effects.append(
            Effect(
                "refund_to_tender",
                data,
                reason=say("tender.split"),
                rule="spec.3.1",
            )
        )
    return out


def _whole_points(
    order: Order, mpp: int, remaining: list[int], shares: list[int], out: TenderSplit
) -> None:
    """Give points tenders whole points; leftovers go to cash with room, else round up."""
    if mpp == 1:
        return
    cash = [i for i, t in enumerate(order.tenders) if t.kind is not TenderKind.POINTS]
    for i, t in enumerate(order.tenders):
        if t.kind is not TenderKind.POINTS:
            continue
        leftover = shares[i] % mpp
        if not leftover:
            continue
        shares[i] -= leftover
        room = [remaining[j] - shares[j] for j in cash]
        if sum(room) >= leftover:
            for j, space in zip(cash, room, strict=True):
                take = min(space, leftover)
                shares[j] += take
                leftover -= take
                if not leftover:
                    break
        else:
            shares[i] += mpp
            out.rounding += mpp - leftover


def _reverse_earned(
    order: Order,
    policy: Policy,
    customer: CustomerSnapshot,
    returned_points: int,
    due: int,
    out: TenderSplit,
) -> None:
    if order.points_earned.status != "granted":
        out.effects.append(
            Effect(
                "points_cancel_pending",
                {"points": due},
                reason=say("points.pending_cancelled"),
                rule=f"policy.points_vesting_days={policy.points_vesting_days}",
            )
        )
        return
    if policy.points_shortfall == "allow_negative":
        from_balance, shortfall = due, 0
    else:
        available = max(customer.points_balance + returned_points, 0)
        from_balance = min(due, available)
        shortfall = due - from_balance
    out.shortfall_points = shortfall
    out.shortfall_money = shortfall * policy.minor_units_per_point
    out.effects.append(
        Effect(
            "points_reverse_earned",
            {"points": due, "from_balance": from_balance, "shortfall": shortfall},
            reason=(
                say("points.earned_back_short", shortfall=shortfall)
                if shortfall
                else say("points.earned_back")
            ),
            rule=f"policy.points_shortfall={policy.points_shortfall}",
        )
    )
