"""The after-sales case (售后单): opening, review, returns, inspection, refund, timers.

* ``record``      the case as the services hold it (a typed record of its row)
* ``process``     moving a case through the state table; units held by open cases
* ``opening``     open_case: the request, risk, identity, automatic review (CaseDesk)
* ``submission``  a front end's submission: role check and rate, then open_case
* ``approval``    approving: the return label, 极速退款
* ``actions``     every other action: reject, cancel, ship, receive, inspect, resolve, rate
* ``handling``    the desk's hold on a case: escalate, internal notes, claim, assign
* ``debts``       an express-refund debt recovered (wallet, external) or written off
* ``refund``      a case's refund applied and followed
* ``shipments``   return labels and the carrier's tracking events
* ``timers``      the SLA timers the worker fires
* ``views``       the case read model and lists; one case with its timeline and deadlines
* ``timeline``    a case's transitions with their times (the case page); its version (live)
* ``queue``       the agents' work queue, with the actions it suggests
* ``feedback``    the customers' ratings and feedback, for the desk
"""

__all__: list[str] = []  # import the modules themselves
