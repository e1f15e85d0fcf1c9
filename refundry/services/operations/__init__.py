"""Running refundry: figures for /metrics, readiness, worker heartbeats, housekeeping.

* ``metrics_figures``     the business figures (cases, durations, claw-backs, refund rates)
                          and the full scan that computes them
* ``metric_counters``     those figures maintained from the outbox's domain events (/metrics)
* ``operations_figures``  the relay's health (outbox lag, dead letters, gateway errors, beats)
* ``readiness``           /readyz: database, schema, a worker beating
* ``heartbeats``          each worker's last finished round
* ``housekeeping``        expired API idempotency keys deleted
* ``dashboard``           the desk's operations dashboard: those figures shaped for charts
"""

__all__: list[str] = []  # import the modules themselves
