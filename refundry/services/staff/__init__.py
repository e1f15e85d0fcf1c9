"""The people who work at the desk: agents, merchants and admins.

* ``accounts``  staff accounts with argon2id passwords (``refundry user add``) and the
                desk's password sign-in, with a per-account limit on wrong passwords, and
                its passkey sign-in (services/passkeys.py)
"""

__all__: list[str] = []  # import the modules themselves
