"""The pure cores import nothing from Scrapy or Twisted (STYLE.md)."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = ("scrapy", "twisted", "scrapy_playwright")


@pytest.mark.parametrize("package", ["robots_policy", "indexer"])
def test_pure_core_has_no_scrapy_imports(package):
    offenders = []
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []



def _module_imports(module: str) -> set[str]:
    """The modules `module` imports at its top level (a lazy import inside a function is
    not taken at import time)."""
    path = REPO / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = REPO / module.replace(".", "/") / "__init__.py"
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_frontiers_shared_state_needs_no_scrapy():
    """crawler/frontier/store.py and every module of ours it loads run against Redis alone."""
    seen, todo, offenders = set(), ["crawler.frontier.store"], []
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parents = [".".join(module.split(".")[:n]) for n in range(1, module.count(".") + 1)]
        for name in _module_imports(module) | set(parents):
            if name.split(".")[0] in (*FORBIDDEN, "scrapy_redis"):
                offenders.append(f"{module}: {name}")
            elif name.split(".")[0] == "crawler":
                todo.append(name)
    assert offenders == []
