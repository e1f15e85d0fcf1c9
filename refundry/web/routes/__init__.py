"""One module per area of the pages, each with a ``router`` (refundry/web/pages.py)."""
