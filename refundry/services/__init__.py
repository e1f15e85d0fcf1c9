"""Use cases over the store: each one function, one transaction, audit and outbox included."""
