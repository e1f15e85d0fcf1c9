"""The customer: assets read back, inbox, identity checks, risk and refund rights.

* ``views``        coupons, points, eligibility, inbox (read models)
* ``inbox``        reading a message
* ``identity``     one-time codes
* ``risk``         risk features, decisions and restrictions
* ``suspensions``  an agent suspends or lifts refund rights
* ``history``      the desk's view of a customer: orders, cases, refunds, restrictions
* ``profile``      the shop's account creation time (account age), contacts, preferences
* ``adjustments``  points / wallet adjustments posted by the shop
* ``version``      how far the customer's data has moved (its audit chain's length)
"""

__all__: list[str] = []  # import the modules themselves
