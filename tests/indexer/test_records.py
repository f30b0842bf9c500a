"""Each record is defined once: the schema and the row builder come from the same fields, and
DESIGN.md's reader contract names no column the schema lacks."""

import re
from dataclasses import fields
from pathlib import Path

import pytest

from indexer.records import Sighting, crawled_fields, sighting_row
from indexer.store import SIGHTINGS_SCHEMA, TABLES
from tests.fixture_site import sighting

DESIGN = Path(__file__).resolve().parents[2].parent / "shared" / "DESIGN.md"


def contract_columns(text: str) -> dict[str, list[str]]:
    """Table -> columns, from the bullets under each "`table`: ..." line of the contract section."""
    section = text.split("## The gallery (LanceDB) contract", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, list[str]] = {}
    current = None
    for line in section.splitlines():
        header = re.match(r"^`(\w+)`:", line)
        if header:
            current = tables.setdefault(header.group(1), [])
        elif line.startswith("- ") and current is not None:
            while re.search(r"\([^()]*\)", line):  # drop explanations: `kind` (`url`, ...) names values
                line = re.sub(r"\([^()]*\)", "", line)
            current.extend(re.findall(r"`(\w+)`", line))
        elif line.strip() and not line.startswith("- "):
            current = None
    return tables


def test_design_contract_columns_are_all_in_the_schema():
    if not DESIGN.exists():
        pytest.skip(f"{DESIGN} not present")
    contract = contract_columns(DESIGN.read_text(encoding="utf-8"))
    assert {"images", "sightings", "tombstones", "removal_log"} <= set(contract)
    for table, columns in contract.items():
        assert table in TABLES, table
        missing = [c for c in columns if c not in TABLES[table].names]
        assert not missing, f"{table} lacks {missing}"


def test_the_contract_parser_reads_what_it_should():
    text = """## The gallery (LanceDB) contract
intro
`things`: one row per thing
- `a` (string, `not_a_column`), `b`
- `c` (with (nested) notes)

Also kept: `not_a_table`
## Next
- `d`
"""
    assert contract_columns(text) == {"things": ["a", "b", "c"]}


def test_the_row_the_schema_and_the_item_come_from_one_definition():
    from crawler.items import ImageItem

    row = sighting_row("ab" * 32, sighting("http://a.test/1.jpg"))
    assert list(row) == SIGHTINGS_SCHEMA.names
    assert SIGHTINGS_SCHEMA.names[2:] == [f.name for f in fields(Sighting)]
    item_fields = {f.name for f in fields(ImageItem)}
    assert {f.name for f in crawled_fields(Sighting)} <= item_fields
    assert {"domain", "fetched_at"}.isdisjoint(item_fields)  # the indexer fills those in
