"""The tamper-evident audit log.

* ``chain``  AuditTrail (entries appended in the use case's transaction), verify_chain
* ``views``  an order's entries as a caller may see them
"""

__all__: list[str] = []  # import the modules themselves
