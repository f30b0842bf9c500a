"""`gallery export` and `gallery report`: the gallery handed on, and what was left out and why.
Registered on the main app by gallery/cli.py; thin, like every command."""

from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from gallery.cli import GalleryOption, JsonOption, _fail, _open_gallery, _print_json, app, out


class ExportFormat(str, Enum):
    parquet = "parquet"
    webdataset = "webdataset"
    jsonl = "jsonl"


def _parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--since wants a date, YYYY-MM-DD or an ISO 8601 time, got {text!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@app.command()
def export(
    format_: Annotated[ExportFormat, typer.Option("--format", help="Shard format.")] = ExportFormat.parquet,
    out_: Annotated[str, typer.Option("--out", help="Directory or object-store URI to write.")] = "./export",
    since: Annotated[str | None, typer.Option(help="Only sightings fetched on or after this date (UTC).")] = None,
    domain: Annotated[str | None, typer.Option(help="Only sightings on pages of this registrable domain.")] = None,
    min_side: Annotated[int | None, typer.Option(min=1, help="Only images whose shorter side has this many pixels.")] = None,
    with_thumbnails: Annotated[bool, typer.Option(help="Put the face-pixelated thumbnail in parquet/jsonl rows.")] = False,
    shard_rows: Annotated[int, typer.Option(min=1, help="Most rows in one shard.")] = 100_000,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier export at --out.")] = False,
    gallery: GalleryOption = "./gallery",
    as_json: JsonOption = False,
) -> None:
    """Write the gallery as dataset shards: one row per sighting, joined with its image."""
    from indexer.export import ExportError, ExportOptions, Filters, run_export

    store = _open_gallery(gallery)
    options = ExportOptions(
        format=format_.value,
        out=out_,
        filters=Filters(since=_parse_since(since), domain=domain, min_side=min_side),
        with_thumbnails=with_thumbnails,
        overwrite=overwrite,
        shard_rows=shard_rows,
    )
    try:
        result = run_export(store, options)
    except ExportError as exc:
        _fail(str(exc))
    except OSError as exc:  # the destination could not even be made
        _fail(f"cannot write the export to {out_}: {exc.strerror or exc}")
    manifest = result.manifest
    if as_json:
        _print_json({"manifest_path": result.manifest_path, **manifest})
    else:
        counts = manifest["counts"]
        out.print(
            f"exported {counts['rows']} sightings of {counts['images']} images in {counts['shards']} "
            f"{format_.value} shard(s); manifest {result.manifest_path}"
        )
        for reason, count in counts["left_out"].items():
            out.print(f"  left out: {reason.replace('_', ' ')} {count}")
    if not result.complete:
        _fail(f"export incomplete ({manifest['error']}); the manifest lists the {len(manifest['shards'])} whole shard(s)")


@app.command()
def report(
    out_: Annotated[Path, typer.Option("--out", help="Where to write the HTML page.")] = Path("report.html"),
    gallery: GalleryOption = "./gallery",
    as_json: JsonOption = False,
) -> None:
    """The rights report: what was crawled, what was left out and why, removals, faces, licences."""
    from gallery.report import render_report
    from indexer.report import build_report

    data = build_report(_open_gallery(gallery))
    if as_json:
        _print_json(data)
        return
    try:
        out_.write_text(render_report(data), encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {out_}: {exc.strerror}")
    left = sum(b["count"] for b in data["left_out"]["blocked"])
    out.print(
        f"rights report written to {out_}: {data['totals']['images']:,} images, {data['totals']['sightings']:,} sightings, "
        f"{left:,} requests left out, {data['removals']['requests']:,} removal request(s)"
    )
