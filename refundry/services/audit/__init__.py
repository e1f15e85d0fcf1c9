"""The tamper-evident audit log.

* ``chain``  AuditTrail (entries appended in the use case's transaction), verify_chain (the
             whole chain), verify_entries (an order's entries where they stand)
* ``keys``   the HMAC keys that sign it, attached to the engine by the bootstrap
* ``views``  an order's entries as a caller may see them
"""

__all__: list[str] = []  # import the modules themselves
