"""`make demo` and SPEC's worked examples, out of the package root.

* ``__main__``        ``python -m refundry.demo``: the worked examples, then the shop and the cases
* ``worked_examples`` SPEC §3's worked examples as documents (tests, the demo, examples/)
* ``shop``            a seeded shop on SQLite with refunds applied through the store
* ``cases``           after-sales cases end to end (review, returns, timers, notifications)
"""
