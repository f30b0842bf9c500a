"""Operator mistakes through the real command line: each exits non-zero with one line on stderr
and changes nothing."""

import json
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from gallery.cli import app
from indexer.store import Gallery
from tests.conftest import run_gallery


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def cli(*args: str, check: bool = True) -> Ran:
    """The command line in this process (Typer's runner): the same code as `gallery`, without a
    fresh interpreter per case; one case below runs the real process to show no Traceback."""
    result = CliRunner().invoke(app, list(args))
    ran = Ran(result.exit_code, result.stdout, result.stderr)
    if check and ran.returncode != 0:
        raise AssertionError(f"gallery {' '.join(args)} exited {ran.returncode}: {ran.stderr}")
    return ran


def _one_line_error(result, *words: str) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def gallery(tmp_path):
    """An empty gallery: (path, versions of its tables) to show a refusal changed nothing."""
    path = tmp_path / "g"
    store = Gallery(str(path))
    store.add_optout_entries(["example.org"])
    return path


def _versions(path) -> dict:
    store = Gallery(str(path), create=False)
    return {name: store.db.open_table(name).version for name in store.db.list_tables().tables}


def test_crawl_mistakes_are_one_line_and_create_nothing(tmp_path):
    nested = tmp_path / "nested.toml"
    nested.write_text("seeds = " + "[" * 3000 + "]" * 3000 + "\n")
    cases = [
        (["crawl", "http://127.0.0.1:8/", "--delay", "inf"], ["politeness.delay", "inf"]),
        (["crawl", "http://127.0.0.1:8/", "--delay", "nan"], ["politeness.delay", "nan"]),
        (["crawl", "http://127.0.0.1:8/", "--delay", "-1"], ["politeness.delay"]),
        (["crawl", "http://127.0.0.1:99999/"], ["port must be between 1 and 65535"]),
        (["crawl", "http://☃.example/"], ["not a valid internationalised domain name"]),
        (["crawl", "http://user:hunter2@127.0.0.1:99999/"], ["user:***@"]),
    ]
    for args, words in cases:
        line = _one_line_error(cli(*args, "--gallery", str(tmp_path / "g"), check=False), *words)
        assert "hunter2" not in line
    # The real process: a 3,000-deep job file is one line, not a RecursionError's Traceback.
    _one_line_error(run_gallery("crawl", "--job", str(nested), "--gallery", str(tmp_path / "g"), check=False), "nested too deeply")
    assert not (tmp_path / "g").exists()


def test_serve_refuses_an_empty_keys_file_and_bad_ports(tmp_path, gallery):
    empty = tmp_path / "keys.txt"
    empty.write_text("# no keys yet\n\n")
    _one_line_error(cli("serve", "--gallery", str(gallery), "--search-keys-file", str(empty), check=False),
                    "--search-keys-file", "holds no key")
    for port in ("0", "70000"):
        _one_line_error(cli("serve", "--gallery", str(gallery), "--port", port, check=False), "--port")


def test_remove_refuses_a_public_suffix_unless_told(gallery):
    before = _versions(gallery)
    for suffix in ("github.io", "blogspot.com"):  # the private section of the list
        _one_line_error(cli("remove", "--domain", suffix, "--gallery", str(gallery), check=False),
                        suffix, "public suffix", "--yes-public-suffix")
    _one_line_error(cli("remove", "--domain", "co.uk", "--gallery", str(gallery), check=False), "public suffix")
    assert _versions(gallery) == before
    result = cli("remove", "--domain", "github.io", "--yes-public-suffix", "--gallery", str(gallery), "--json")
    assert json.loads(result.stdout)["rows_removed"] == 0


def test_a_bad_line_refuses_the_whole_batch(tmp_path, gallery):
    batch = tmp_path / "requests.jsonl"
    batch.write_text(
        json.dumps({"domain": "example.org", "basis": "erasure", "received": "2024-01-02"}) + "\n"
        + json.dumps({"domain": "example.net", "basis": "erasure", "received": "9999-12-31"}) + "\n"
    )
    before = _versions(gallery)
    _one_line_error(cli("remove", "--requests", str(batch), "--gallery", str(gallery), check=False),
                    f"{batch}:2:", "9999-12-31", "nothing removed")
    assert _versions(gallery) == before
    assert json.loads(cli("removals", "--gallery", str(gallery), "--json").stdout)["requests"] == []


def test_optout_add_refuses_a_mistyped_gallery_unless_create(tmp_path, gallery):
    mistyped = tmp_path / "galery"
    _one_line_error(cli("optout", "add", "example.com", "--gallery", str(mistyped), check=False), "--create")
    assert not mistyped.exists()
    cli("optout", "add", "example.com", "--gallery", str(mistyped), "--create")
    assert Gallery(str(mistyped), create=False).optout_entries() == ["example.com"]
    cli("optout", "add", "example.net", "--gallery", str(gallery))  # an existing gallery needs no --create
    assert "example.net" in Gallery(str(gallery), create=False).optout_entries()
