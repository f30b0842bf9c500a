"""The layers of DESIGN.md: the pure cores import nothing from Scrapy or Twisted (STYLE.md), and
no package imports one above it (robots_policy <- indexer <- crawler <- gallery)."""

import ast
import io
import re
import tokenize
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
    r"\blance_namespace_urllib3_client\b": "LanceDB's REST client package",
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
