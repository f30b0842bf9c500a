"""The `gallery` command line. Thin: parse, call into crawler/ and indexer/, print."""

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="A polite, rights-respecting image crawler and its LanceDB gallery.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
out = Console()

GalleryOption = Annotated[str, typer.Option("--gallery", help="LanceDB directory or object-store URI.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a summary.")]


def _fail(message: str) -> NoReturn:
    """An error the user can act on: one line on stderr, exit status 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _print_json(document) -> None:
    sys.stdout.write(json.dumps(document, default=str, indent=2) + "\n")


def _open_gallery(uri: str):
    from indexer.store import Gallery

    try:
        return Gallery(uri, create=False)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))


def _print_crawl_summary(summary: dict) -> None:
    table = Table(title="crawl summary", show_header=False)
    for key in ("pages", "images_stored", "duplicates_exact", "duplicates_near", "sightings_written"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    for group in ("blocked", "skipped"):
        for reason, count in summary[group].items():
            table.add_row(f"{group}: {reason}", str(count))
    out.print(table)


def _crawl(request, as_json: bool) -> None:
    from crawler.run import CrawlFailed, run_crawl, summarize

    try:
        summary = summarize(run_crawl(request))
    except CrawlFailed as exc:
        _fail(f"crawl failed: {exc}")
    if as_json:
        _print_json(summary)
    else:
        _print_crawl_summary(summary)


@app.command()
def demo(gallery: GalleryOption = "./gallery", as_json: JsonOption = False) -> None:
    """Serve the bundled demo site on 127.0.0.1 and crawl it into the gallery."""
    from crawler.run import CrawlRequest
    from gallery.demo import build_demo_site
    from gallery.site import StaticSite

    with tempfile.TemporaryDirectory(prefix="gallery-demo-") as tmp, StaticSite(build_demo_site(Path(tmp))) as site:
        if not as_json:
            out.print(f"demo site at {site.url}/, crawling into {gallery}")
        request = CrawlRequest(
            seeds=[site.url + "/"],
            gallery_uri=gallery,
            allow_loopback=True,
            progress=not as_json,
            settings={"DOWNLOAD_DELAY": 0},
        )
        _crawl(request, as_json)


@app.command()
def crawl(
    seeds: Annotated[list[str], typer.Argument(help="Start URLs.")],
    gallery: GalleryOption = "./gallery",
    allowed_domain: Annotated[list[str], typer.Option(help="Also follow links to this domain.")] = [],
    max_pages: Annotated[int | None, typer.Option(min=1, help="Stop following links after this many pages.")] = None,
    allow_loopback: Annotated[bool, typer.Option(help="Open 127.0.0.0/8 and ::1 (demo and tests only).")] = False,
    delay: Annotated[float | None, typer.Option(min=0, help="Seconds between requests to one host.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Crawl SEEDS and everything they link to on the same hosts into the gallery."""
    from crawler.run import CrawlRequest

    for seed in seeds:
        if not seed.startswith(("http://", "https://")):
            _fail(f"seed {seed!r} is not an http(s) URL")
    request = CrawlRequest(
        seeds=seeds,
        gallery_uri=gallery,
        allowed_domains=allowed_domain,
        max_pages=max_pages,
        allow_loopback=allow_loopback,
        progress=not as_json and sys.stderr.isatty(),
        settings={} if delay is None else {"DOWNLOAD_DELAY": delay},
    )
    _crawl(request, as_json)


@app.command()
def search(
    image_file: Annotated[Path | None, typer.Argument(help="A picture to look for.")] = None,
    hash_: Annotated[str | None, typer.Option("--hash", help="KIND:HEX, KIND one of phash, pdq, sha256.")] = None,
    max_distance: Annotated[int | None, typer.Option(min=0, help="Largest Hamming distance (default per kind).")] = None,
    gallery: GalleryOption = "./gallery",
    as_json: JsonOption = False,
) -> None:
    """Find where a picture (or a hash of one) appears: near-duplicates and their sightings."""
    from indexer.decode import ImageRejected
    from indexer.hashes import parse_hash
    from indexer.search import search_hash, search_image

    if (image_file is None) == (hash_ is None):
        _fail("give either IMAGE_FILE or --hash KIND:HEX")
    store = _open_gallery(gallery)
    if hash_ is not None:
        try:
            kind, value = parse_hash(hash_)
        except ValueError as exc:
            _fail(str(exc))
        hits = search_hash(store, kind, value, max_distance=max_distance)
    else:
        try:
            hits = search_image(store, image_file.read_bytes(), max_distance=max_distance)
        except OSError as exc:
            _fail(f"cannot read {image_file}: {exc.strerror}")
        except ImageRejected as exc:
            _fail(f"{image_file} is not a usable image ({exc})")
    if as_json:
        _print_json({"matches": [hit.to_json() for hit in hits]})
        return
    if not hits:
        out.print("no matches")
    for hit in hits:
        image = hit.image
        out.print(
            f"[bold]{image['image_id'][:16]}…[/bold] {hit.kind} distance {hit.distance}, "
            f"{image['width']}x{image['height']} {image['format']}, {len(hit.sightings)} sighting(s)"
        )
        for s in hit.sightings:
            out.print(f"  {s['image_url']}  on  {s['page_url']}")


@app.command()
def stats(gallery: GalleryOption = "./gallery", as_json: JsonOption = False) -> None:
    """Counts of images and sightings, and what the last crawl blocked or skipped, by reason."""
    from crawler.run import summarize

    store = _open_gallery(gallery)
    document = store.counts()
    last = store.last_crawl()
    document["last_crawl"] = {"run_id": last["run_id"], "finished_at": last["finished_at"], **summarize(last)} if last else None
    if as_json:
        _print_json(document)
        return
    out.print(f"images: {document['images']}  sightings: {document['sightings']}")
    if last:
        _print_crawl_summary(document["last_crawl"])


def main() -> None:
    app()
