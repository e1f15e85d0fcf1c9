"""Every error code refundry can raise is documented in docs/errors.md, and every code is dotted.

The codes are read from the source: each ``code="…"`` keyword and each ``code = "…"`` class
attribute in refundry/ (a code built at run time would escape this check: there are none, and
the check below keeps it so by refusing f-strings as codes).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "refundry"
DOTTED = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


def _codes() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name.endswith("_http_sandbox.py"):
            continue  # these play a provider and answer in its codes (resource_missing, …)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            value: ast.expr | None = None
            if (isinstance(node, ast.keyword) and node.arg == "code") or (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "code"
                and isinstance(_enclosing_class(tree, node), ast.ClassDef)
            ):
                value = node.value
            if value is None:
                continue
            assert not isinstance(value, ast.JoinedStr), f"{where}:{node.lineno}: f-string code"
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.setdefault(value.value, []).append(f"{where}:{node.lineno}")
    return found


def _enclosing_class(tree: ast.Module, target: ast.AST) -> ast.AST | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and target in node.body:
            return node
    return None


def _documented() -> set[str]:
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    return set(re.findall(r"`([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_*]*)+)`", text))


def test_every_raised_code_is_in_docs_errors_md() -> None:
    documented = _documented()
    missing = {c: w for c, w in _codes().items() if c not in documented}
    assert not missing, f"codes raised but not in docs/errors.md: {missing}"


def test_every_code_is_dotted() -> None:
    bad = {c: w for c, w in _codes().items() if not DOTTED.fullmatch(c)}
    assert not bad, f"codes without a dotted area: {bad}"
