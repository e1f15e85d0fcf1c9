"""The outbox: messages written in the use case's transaction, delivered after commit.

* ``messages``  enqueue, Topic, customer notifications
* ``relay``     claims due messages and delivers them (gateway, carrier, notifier, events)
* ``case_messages``  a case's notifications and how each fared, for the desk
"""

__all__: list[str] = []  # import the modules themselves
