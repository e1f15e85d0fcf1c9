"""Dependencies point inward: the API reaches the store only through the services.

Routes parse, call a service (services/*_views.py, services/access.py and the use cases) and
map the answer to their response schema; the pages (refundry/web) call the same functions, so
no module under refundry/api or refundry/web may import ``refundry.store``, at the top or
inside a function, absolutely, relatively or by name (``importlib.import_module``). And the
services, which the pages share, must not lean on the API or the pages: no module under
refundry/services imports ``refundry.api`` or ``refundry.web``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import refundry

PACKAGE = Path(refundry.__file__).parent

# Modules still importing the store, each with why. An entry whose module no longer imports
# the store fails test_allowed_exceptions_are_still_needed: delete the entry then.
ALLOWED: dict[str, str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, *, is_package: bool = False) -> Iterator[str]:
    """Every module name ``source`` (the text of ``module``) imports, anywhere in the file."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # ``from refundry import store`` imports the submodule refundry.store
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            yield node.args[0].value


def _reaches(source: str, module: str, target: str, *, is_package: bool = False) -> list[str]:
    return sorted(
        {
            name
            for name in imported_names(source, module, is_package=is_package)
            if name == target or name.startswith(target + ".")
        }
    )


def _files(folder: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        yield path.relative_to(PACKAGE.parent).as_posix(), path


def _violations(folder: str, target: str) -> dict[str, list[str]]:
    found = {}
    for shown, path in _files(folder):
        names = _reaches(
            path.read_text(encoding="utf-8"),
            _module_name(path),
            target,
            is_package=path.name == "__init__.py",
        )
        if names:
            found[shown] = names
    return found


def test_no_api_module_imports_the_store() -> None:
    found = _violations("api", "refundry.store")
    unexpected = {path: names for path, names in found.items() if path not in ALLOWED}
    assert unexpected == {}, (
        "refundry/api must reach the store through a service (services/*_views.py, "
        f"services/access.py, a use case): {unexpected}"
    )


def test_allowed_exceptions_are_still_needed() -> None:
    found = _violations("api", "refundry.store")
    stale = sorted(path for path in ALLOWED if path not in found)
    assert stale == [], f"no longer import refundry.store, delete them from ALLOWED: {stale}"


def test_no_page_module_imports_the_store() -> None:
    """The pages (refundry/web) call the same read models, use cases and access module as the
    API: not one of their modules reads a table."""
    assert (PACKAGE / "web").is_dir()
    assert _violations("web", "refundry.store") == {}


def test_no_service_module_imports_the_pages() -> None:
    assert _violations("services", "refundry.web") == {}


def test_no_service_module_imports_the_api() -> None:
    assert _violations("services", "refundry.api") == {}


@pytest.mark.parametrize(
    "source",
    [
        "import refundry.store.tables",
        "import refundry.store as s",
        "from refundry.store.tables import orders",
        "from refundry import store",
        "from ... import store",
        "from ...store.engine import make_engine",
        "def f():\n    from refundry.store.tables import cases\n",
        "class C:\n    def m(self):\n        import refundry.store\n",
        "import importlib\nimportlib.import_module('refundry.store.tables')",
        "__import__('refundry.store')",
    ],
)
def test_the_check_sees_every_way_of_importing_the_store(source: str) -> None:
    assert _reaches(source, "refundry.api.routes.orders", "refundry.store") != []


@pytest.mark.parametrize(
    "source",
    [
        "from refundry.services.orders.views import read_order",
        "from refundry.services import store_free",  # a name that merely starts alike
        "from . import deps",
        "import refundry.storefront",
        "text = 'refundry.store'",
    ],
)
def test_the_check_lets_other_imports_through(source: str) -> None:
    assert _reaches(source, "refundry.api.routes.orders", "refundry.store") == []
