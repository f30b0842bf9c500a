"""The pure cores import nothing from Scrapy or Twisted (STYLE.md)."""

import ast
import io
import re
import tokenize
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


# Third-party internals, each reached only through crawler/compat.py or indexer/compat.py.
PRIVATE_SEAMS = {
    r"\._slot\b": "Scrapy's engine slot",
    r"\b(per_slot_settings|get_slot_key)\b|downloader\.slots\b": "Scrapy's downloader slots",
    r"\b_get_request_path\b": "FilesystemCacheStorage._get_request_path",
    r"\b_(en|de)code_request\b": "scrapy-redis's queue serialization",
    r"\bcontext_wrappers\b|\.abort_request\b|hasattr\([^)]*[\"']browser[\"']": "scrapy-playwright's handler state",
    r"\bclient\.Pipeline\b": "redis-py's Pipeline constructor",
    r"\b_rowid\b": "Lance's row address",
    r"\bLanceFileReader\b|\blance\.file\b": "Lance's file reader",
}
COMPAT_MODULES = {"crawler/compat.py", "indexer/compat.py"}


def _code_without_comments(path: Path) -> str:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return tokenize.untokenize((t.type, t.string) for t in tokens if t.type != tokenize.COMMENT)


def test_private_third_party_names_only_in_compat_modules():
    offenders = []
    for package in ("crawler", "indexer", "robots_policy", "gallery", "benchmarks"):
        for path in sorted((REPO / package).rglob("*.py")):
            if str(path.relative_to(REPO)) in COMPAT_MODULES:
                continue
            code = _code_without_comments(path)
            offenders += [f"{path.relative_to(REPO)}: {what}" for pattern, what in PRIVATE_SEAMS.items() if re.search(pattern, code)]
    assert offenders == [], "reach these through crawler/compat.py or indexer/compat.py"
