"""The data stewards' commands: `gallery optout`, `gallery remove` and `gallery removals`.
Registered on the main app by gallery/cli.py; thin, like every command."""

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gallery.cli import (
    GalleryOption,
    JsonOption,
    QuietOption,
    _fail,
    _open_gallery,
    _print_json,
    _read_optout_file,
    app,
    out,
)
from robots_policy.match_thresholds import describe_threshold

optout_app = typer.Typer(help="Steward opt-out entries kept in the gallery and honoured by every crawl.")
app.add_typer(optout_app, name="optout")


def _optout_entries(entries: list[str], file: Path | None) -> list[str]:
    from robots_policy.optout import OptOutError, parse_entry

    parsed = list(_read_optout_file(file).entries) if file else []
    try:
        parsed += [parse_entry(e) for e in entries]
    except OptOutError as exc:
        _fail(str(exc))
    if not parsed:
        _fail("give at least one ENTRY or --file FILE")
    return [str(e) for e in parsed]


@optout_app.command("add")
def optout_add(
    entries: Annotated[list[str] | None, typer.Argument(help="Domains, URL prefixes, sha256:HEX or pdq:HEX.")] = None,
    file: Annotated[Path | None, typer.Option(help="An opt-out list file to add whole.")] = None,
    create: Annotated[bool, typer.Option("--create", help="Create the gallery if there is none at --gallery yet.")] = False,
    gallery: GalleryOption = "./gallery",
    as_json: JsonOption = False,
) -> None:
    """Add opt-out entries to the gallery."""
    from indexer.store import Gallery

    parsed = _optout_entries(entries or [], file)
    # A mistyped --gallery would otherwise create a new, empty gallery no crawl ever reads.
    try:
        store = Gallery(gallery, create=create)
    except (FileNotFoundError, ValueError) as exc:
        _fail(f"{exc}; give --create to start a new gallery there")
    added = store.add_optout_entries(parsed)
    if as_json:
        _print_json({"added": added})
    else:
        out.print(f"added {len(added)} entr{'y' if len(added) == 1 else 'ies'}")


@optout_app.command("remove")
def optout_remove(
    entries: Annotated[list[str], typer.Argument(help="Entries exactly as listed.")],
    gallery: GalleryOption = "./gallery",
    as_json: JsonOption = False,
) -> None:
    """Remove opt-out entries from the gallery."""
    removed = _open_gallery(gallery).remove_optout_entries(_optout_entries(entries, None))
    if as_json:
        _print_json({"removed": removed})
    else:
        out.print(f"removed {removed}")


@optout_app.command("list")
def optout_list_entries(gallery: GalleryOption = "./gallery", as_json: JsonOption = False) -> None:
    """List the gallery's opt-out entries."""
    entries = _open_gallery(gallery).optout_entries()
    if as_json:
        _print_json({"entries": entries})
    else:
        for entry in entries:
            out.print(entry)


IMAGE_HELP = (
    "A picture: exact copies, and near-duplicates (mirrored or turned too) on which "
    f"{describe_threshold('pdq')} and {describe_threshold('phash')} agree; "
    "never crops of it or pictures containing it (search finds those)."
)
HASH_HELP = f"KIND:HEX: {describe_threshold('phash')}, {describe_threshold('pdq')}, sha256 exact."


@app.command()
def remove(
    url: Annotated[list[str], typer.Option("--url", help="An image or page URL: its sightings go.")] = [],
    url_prefix: Annotated[list[str], typer.Option("--url-prefix", help="Every URL starting with this.")] = [],
    domain: Annotated[list[str], typer.Option("--domain", help="A registrable domain, subdomains included.")] = [],
    image: Annotated[list[Path], typer.Option("--image", help=IMAGE_HELP)] = [],
    hash_: Annotated[list[str], typer.Option("--hash", help=HASH_HELP)] = [],
    basis: Annotated[str, typer.Option(help="copyright, erasure, opt-out or other.")] = "other",
    requester: Annotated[str | None, typer.Option(help="Who asked.")] = None,
    reference: Annotated[str | None, typer.Option(help="Ticket or notice id.")] = None,
    notice: Annotated[Path | None, typer.Option(help="DMCA notice fields, JSON (copyright only).")] = None,
    received: Annotated[str | None, typer.Option(help="When the request arrived, YYYY-MM-DD (default now).")] = None,
    requests: Annotated[Path | None, typer.Option("--requests", help="A batch: CSV or JSON lines.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would go; change nothing.")] = False,
    yes_all: Annotated[bool, typer.Option("--yes-all", help="Allow a request that matches every row.")] = False,
    yes_public_suffix: Annotated[
        bool, typer.Option("--yes-public-suffix", help="Allow --domain to name a public suffix (github.io: every site under it).")
    ] = False,
    gallery: GalleryOption = "./gallery",
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, show_default=False, help="A line on stderr per request done.")] = 0,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete what a request matches, purge it from disk, tombstone it so no crawl brings it back, log it."""
    from indexer.removal import PurgeFailed, RequestError, build_request, parse_requests_file, process_requests
    from indexer.store_errors import StoreError

    selectors = [("url", v) for v in url] + [("url_prefix", v) for v in url_prefix] + [("domain", v) for v in domain]
    selectors += [("image", str(v)) for v in image] + [("hash", v) for v in hash_]
    if requests is not None and selectors:
        _fail("give selectors or --requests FILE, not both")
    store = _open_gallery(gallery)
    line_errors = []
    try:
        if requests is not None:
            batch, line_errors = parse_requests_file(requests)
            # The whole batch is checked before the first delete: one bad line, nothing done.
            if line_errors:
                first = line_errors[0]
                more = f" (and {len(line_errors) - 1} more bad line(s))" if len(line_errors) > 1 else ""
                _fail(f"{requests}:{first.line}: {first.message}{more}; nothing removed")
            for request in batch:
                _refuse_public_suffixes(request.selectors, allowed=yes_public_suffix, where=f"{requests}: ")
        else:
            batch = [
                build_request(
                    selectors, basis=basis, requester=requester, reference=reference, notice=notice, received=received
                )
            ]
            _refuse_public_suffixes(batch[0].selectors, allowed=yes_public_suffix, where="")
    except RequestError as exc:
        _fail(str(exc))
    try:
        with _removal_progress(len(batch), verbose=verbose, quiet=quiet) as progress:
            reports = process_requests(store, batch, dry_run=dry_run, yes_all=yes_all, progress=progress)
    except PurgeFailed as exc:
        _fail(f"purge not verified: {exc}")
    except StoreError as exc:
        _fail(str(exc))
    if requests is None and reports[0].refused:
        _fail(f"request refused, nothing removed: {reports[0].refused}")
    if as_json:
        if requests is None:
            _print_json(reports[0].to_json())
        else:
            errors = [{"line": e.line, "message": e.message} for e in line_errors]
            _print_json({"requests": [r.to_json() for r in reports], "errors": errors})
    else:
        for report in reports:
            _print_removal(report)
    problems = [f"{requests}:{e.line}: {e.message}" for e in line_errors]
    problems += [f"request {r.request_id} refused: {r.refused}" for r in reports if r.refused]
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(1)


@contextmanager
def _removal_progress(total: int, *, verbose: int, quiet: bool):
    """What `gallery remove` shows while it works through a batch: a bar on a terminal, or with
    -v a line per request on stderr; nothing for a single request or with --quiet."""
    if quiet or (total < 2 and not verbose):
        yield None
        return
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("removing", total=total)
            yield lambda done, _, what: bar.update(task, completed=done, description=what)
        return
    if not verbose:
        yield None
        return
    yield lambda done, total, what: typer.echo(f"remove: {done}/{total} {what}", err=True)


def _refuse_public_suffixes(selectors, *, allowed: bool, where: str) -> None:
    from robots_policy.domains import public_suffix_of

    for selector in selectors:
        if selector.kind == "domain" and not allowed and public_suffix_of(selector.value):
            _fail(
                f"{where}--domain {selector.value} is a public suffix: it covers every unrelated site registered "
                "under it; pass --yes-public-suffix if that is meant; nothing removed"
            )


def _print_removal(report) -> None:
    who = ", ".join(filter(None, (report.basis, report.requester, report.reference)))
    out.print(f"[bold]request {report.request_id}[/bold] ({who})")
    selectors = ", ".join(f"{s['kind']} {s['value']}" for s in report.selectors)
    out.print(f"  selectors: {selectors}")
    if report.refused:
        out.print(f"  refused: {report.refused}")
    elif report.dry_run:
        matched = report.sightings_matched + report.images_matched
        out.print(
            f"  dry run: would remove {report.sightings_matched} sightings and {report.images_matched} images: "
            f"{matched} rows (nothing changed)"
        )
    elif report.already_done:
        when = f"{report.purged_at:%Y-%m-%d %H:%M} UTC" if report.purged_at else "earlier"
        out.print(f"  already processed ({when}): 0 rows removed now")
    else:
        out.print(
            f"  removed {report.sightings_removed} sightings and {report.images_removed} images: {report.rows_removed} rows"
        )
    out.print(f"  near matches: {report.near_matches_found} found, {report.near_matches_removed} removed")
    if report.purged and not report.already_done:
        out.print(f"  purged: true ({report.files_scanned} files scanned, no trace left)")
    if report.deadline:
        out.print(f"  erasure deadline (GDPR Art. 12(3)): {report.deadline:%Y-%m-%d}")
    for row in report.sample:
        out.print(f"  {row['image_url']}  on  {row['page_url']}")
    for note in report.notes:
        out.print(f"  note: {note}")
    for held in report.exports:
        out.print(f"  exported before: {held['sightings']} sighting(s) in {held['manifest']} (tell its holders)")


@app.command()
def removals(gallery: GalleryOption = "./gallery", as_json: JsonOption = False) -> None:
    """Removal requests, with erasure deadlines within 7 days or passed flagged."""
    from indexer.removal import list_removals

    statuses = list_removals(_open_gallery(gallery))
    attention = [s.request_id for s in statuses if s.flag]
    if as_json:
        _print_json({"requests": [s.to_json() for s in statuses], "attention": attention})
        return
    if not statuses:
        out.print("no removal requests")
        return
    table = Table(title="removal requests")
    for column in ("request", "state", "basis", "received", "deadline", "rows", "flag"):
        table.add_column(column)
    for s in statuses:
        table.add_row(
            s.request_id[:12],
            s.state,
            s.basis or "",
            f"{s.received_at:%Y-%m-%d}" if s.received_at else "",
            f"{s.deadline:%Y-%m-%d}" if s.deadline else "",
            "" if s.rows_removed is None else str(s.rows_removed),
            s.flag or "",
        )
    out.print(table)
    if attention:
        out.print(f"{len(attention)} request(s) need attention: {', '.join(a[:12] for a in attention)}")

