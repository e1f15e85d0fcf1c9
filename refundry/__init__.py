"""refundry — the after-sales engine: refund plans that undo everything a purchase touched."""

__version__ = "0.1.0"
