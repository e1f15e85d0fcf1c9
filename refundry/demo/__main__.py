"""``python -m refundry.demo`` (``make demo``): see refundry/demo/walkthrough.py.

``--serve`` (``make demo SERVE=1``) serves a demo shop in the browser instead, until Ctrl-C:
see refundry/demo/serve.py."""

import argparse
from pathlib import Path

parser = argparse.ArgumentParser(prog="python -m refundry.demo", description=__doc__)
parser.add_argument("--serve", action="store_true", help="serve a demo shop until Ctrl-C")
parser.add_argument("--port", type=int, default=8000, help="with --serve (0: any free port)")
parser.add_argument(
    "--db", type=Path, default=Path("refundry-demo-serve.sqlite"), help="with --serve"
)
args = parser.parse_args()
if args.serve:
    from refundry.demo.serve import main as serve

    serve(port=args.port, db=args.db)
else:
    from refundry.demo.walkthrough import main

    main()
