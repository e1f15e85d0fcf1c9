"""The tamper-evident audit log.

* ``chain``  AuditTrail (entries appended in the use case's transaction to the chain of the
             customer it acts on), chain_of, the signatures
* ``verify`` verify_chain (every chain), verify_entries (an order's entries where they stand)
* ``anchors`` checkpoints of the chains' heads, sealed by a digest kept outside (--anchor)
* ``keys``   the HMAC keys that sign it, attached to the engine by the bootstrap
* ``views``  an order's entries as a caller may see them
"""

__all__: list[str] = []  # import the modules themselves
