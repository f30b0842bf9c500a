"""The layers of DESIGN.md: the pure cores import nothing from Scrapy or Twisted (STYLE.md), and
no package imports one above it (robots_policy <- indexer <- crawler <- gallery)."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = ("scrapy", "twisted", "scrapy_playwright")
# package -> the project packages it must not import (imports inside functions count too).
LAYERS = {
    "robots_policy": ("crawler", "indexer", "gallery"),
    "indexer": ("crawler", "gallery"),
    "crawler": ("gallery",),
}


def _imports(package: str):
    """(file, imported module) for every import in the package, relative ones resolved."""
    for path in (REPO / package).rglob("*.py"):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path.relative_to(REPO), alias.name
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".")[: -node.level]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                yield path.relative_to(REPO), name


@pytest.mark.parametrize("package", ["robots_policy", "indexer"])
def test_pure_core_has_no_scrapy_imports(package):
    offenders = [f"{path}: {name}" for path, name in _imports(package) if name.split(".")[0] in FORBIDDEN]
    assert offenders == []


@pytest.mark.parametrize(("package", "above"), [pytest.param(p, a, id=p) for p, a in sorted(LAYERS.items())])
def test_no_package_imports_a_layer_above_it(package, above):
    offenders = [f"{path}: {name}" for path, name in _imports(package) if name.split(".")[0] in above]
    assert offenders == []
