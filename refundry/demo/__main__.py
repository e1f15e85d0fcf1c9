"""``python -m refundry.demo`` (``make demo``): see refundry/demo/walkthrough.py."""

from refundry.demo.walkthrough import main

main()
