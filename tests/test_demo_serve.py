"""`make demo SERVE=1` (python -m refundry.demo --serve) as a real process: it prints the
address of a running shop, the customer's sign-in link and the desk accounts it created, each
of which works over HTTP, and it stops on Ctrl-C (SIGINT) with exit code 0."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_the_demo_serves_a_shop_until_ctrl_c(tmp_path: Path) -> None:
    command = ["-m", "refundry.demo", "--serve", "--port", "0"]
    demo = subprocess.Popen(
        [sys.executable, *command, "--db", str(tmp_path / "demo.sqlite")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        printed = ""
        deadline = time.monotonic() + 90
        while "Dashboard:" not in printed:
            assert time.monotonic() < deadline, printed
            line = demo.stdout.readline() if demo.stdout else ""
            assert line, f"the demo ended: {printed}"
            printed += line
        base = re.search(r"served at (http://127\.0\.0\.1:\d+)", printed)
        link = re.search(r"Customer sign-in link: (\S+)", printed)
        merchant = re.search(r"name (demo-merchant)  password (\S+)", printed)
        agent = re.search(r"name (demo-agent)  password (\S+)", printed)
        assert base and link and merchant and agent, printed

        with httpx.Client(base_url=base.group(1)) as customer:
            page = customer.get(link.group(1))
            assert page.status_code == 200
            done = customer.post(
                "/signin",
                data={"token": link.group(1).split("token=")[1], "csrf_token": _csrf(page.text)},
            )
            assert done.status_code == 303 and done.headers["location"] == "/orders"
            assert "o-mugs" in customer.get("/orders").text
        for (name, password), home, shows in (
            (merchant.groups(), "/merchant", "Return on its way"),
            (agent.groups(), "/desk", "Under review"),
        ):
            with httpx.Client(base_url=base.group(1)) as staff:
                form = staff.get("/desk/signin")
                done = staff.post(
                    "/desk/signin",
                    data={"name": name, "password": password, "csrf_token": _csrf(form.text)},
                )
                assert (done.status_code, done.headers["location"]) == (303, home)
                assert shows in staff.get(home).text
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=30)
        assert demo.returncode == 0, rest
        assert "The demo shop stopped." in rest
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
