"""The `gallery` command line. Thin: parse, call into crawler/ and indexer/, print."""

import json
import math
import sys
import tempfile
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from crawler import settings as crawl_defaults  # plain values, no Scrapy: the defaults --help shows
from robots_policy.match_thresholds import MATCH_DISTANCE

app = typer.Typer(
    help="A polite, rights-respecting image crawler and its LanceDB gallery.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    # Click's own help layout: at 80 columns rich's tables cut long option names.
    rich_markup_mode=None,
)
out = Console()

GalleryOption = Annotated[str, typer.Option("--gallery", metavar="PATH|URI", help="LanceDB directory or object-store URI.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a summary.")]
VerboseOption = Annotated[
    int, typer.Option("--verbose", "-v", count=True, show_default=False, help="Show the crawl's log: -v its INFO lines, -vv DEBUG too.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final summary.")]

# What `gallery crawl` shows while it runs, besides the summary at the end.
HEARTBEAT_SECONDS = 5.0  # with --json or no terminal: one line on stderr this often


class RenderMode(str, Enum):
    never = "never"
    always = "always"
    auto = "auto"


def _fail(message: str) -> NoReturn:
    """An error the user can act on: one line on stderr, exit status 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _print_json(document) -> None:
    sys.stdout.write(json.dumps(document, default=str, indent=2) + "\n")


def _open_gallery(uri: str):
    from indexer.store import Gallery
    from indexer.store_errors import StoreError

    try:
        return Gallery(uri, create=False)
    except (FileNotFoundError, ValueError, StoreError) as exc:
        _fail(str(exc))


def _print_crawl_summary(summary: dict) -> None:
    table = Table(title="crawl summary", show_header=False)
    for key in ("pages", "images_stored", "duplicates_exact", "duplicates_near", "sightings_written"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    # What the crawl found but did not take, so nothing is silently missing from the counts.
    for label, count in (
        ("links not requested (documents, media)", summary.get("links_skipped", 0)),
        ("fetched, not HTML (dropped)", summary.get("not_html", 0)),
        ("links left at --max-pages", summary.get("pages_left", 0)),
    ):
        if count:
            table.add_row(label, str(count))
    for status, count in summary.get("http_errors", {}).items():
        table.add_row(f"HTTP {status}", str(count))
    for group in ("not_modified", "blocked", "skipped", "notes"):
        for reason, count in summary.get(group, {}).items():
            table.add_row(f"{group.replace('_', ' ')}: {reason}", str(count))
    if summary["render"]["pages"] or summary["render"]["skipped"]:
        table.add_row("pages rendered", str(summary["render"]["pages"]))
        for reason, count in summary["render"]["skipped"].items():
            table.add_row(f"render skipped: {reason}", str(count))
    if summary.get("finish_reason"):
        table.add_row("finish reason", summary["finish_reason"])
    out.print(table)
    if summary.get("go_on"):
        out.print(summary["go_on"])


def _note(message: str, *, quiet: bool) -> None:
    if not quiet:
        typer.echo(f"note: {message}", err=True)


def _crawl(job, as_json: bool, *, verbose: int = 0, quiet: bool = False, settings: dict | None = None, notes: list[str] = ()) -> None:
    from crawler.run import CrawlFailed, run_crawl, summarize

    live = not as_json and not quiet and sys.stderr.isatty()
    shown = {
        # Scrapy's INFO lines (one per response, every 404...) only when asked for.
        "LOG_LEVEL": "ERROR" if quiet else ("WARNING", "INFO", "DEBUG")[min(verbose, 2)],
        "GALLERY_HEARTBEAT": 0.0 if live or quiet else HEARTBEAT_SECONDS,
    }
    try:
        stats = run_crawl(job, progress=live, settings={**shown, **(settings or {})})
    except CrawlFailed as exc:
        _fail(f"crawl failed: {exc}")
    summary = summarize(stats)
    if as_json:
        _print_json(summary)
    else:
        _print_crawl_summary(summary)
    if summary["error"]:
        _fail(f"crawl stopped: {summary['error']}")
    if summary["nothing_crawled"]:
        removed = f"; the empty gallery it created at {job.gallery} was removed" if stats.get("gallery/removed_empty") else ""
        _fail(summary["nothing_crawled"] + removed)
    for url, why in summary["seeds"]["failed"].items():
        _note(f"seed {url} not crawled: {why}", quiet=quiet)
    for note in notes:
        _note(note, quiet=quiet)


def _on_this_machine(url: str) -> bool:
    import ipaddress
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_optout_file(path: Path):
    from robots_policy.optout import OptOutError, OptOutList

    try:
        return OptOutList.parse(path.read_text(encoding="utf-8"), source=str(path))
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")
    except (OptOutError, UnicodeDecodeError) as exc:
        _fail(str(exc))


@app.command()
def demo(gallery: GalleryOption = "./gallery", verbose: VerboseOption = 0, quiet: QuietOption = False, as_json: JsonOption = False) -> None:
    """Serve the bundled demo site on 127.0.0.1 and crawl it into the gallery."""
    from crawler.job import CrawlJob, Politeness
    from gallery.demo import build_demo_site
    from gallery.site import StaticSite

    with tempfile.TemporaryDirectory(prefix="gallery-demo-") as tmp, StaticSite(build_demo_site(Path(tmp))) as site:
        if not as_json:
            out.print(f"demo site at {site.url}/, crawling into {gallery}")
        job = CrawlJob(seeds=(site.url + "/",), gallery=gallery, allow_loopback=True, politeness=Politeness(delay=0))
        _crawl(job, as_json, verbose=verbose, quiet=quiet)


@app.command()
def crawl(
    seeds: Annotated[list[str] | None, typer.Argument(metavar="SEED_URL", help="Start URLs (optional with --job).", show_default=False)] = None,
    job: Annotated[Path | None, typer.Option(metavar="FILE", help="A crawl job (TOML); the options below override it.")] = None,
    gallery: Annotated[
        str | None, typer.Option("--gallery", metavar="PATH|URI", help="LanceDB directory or object-store URI.", show_default="./gallery")
    ] = None,
    allowed_domain: Annotated[list[str], typer.Option(metavar="DOMAIN", help="Also follow links to this domain (repeatable).", show_default=False)] = [],
    max_pages: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Stop following links after this many pages.", show_default="no limit")
    ] = None,
    allow_loopback: Annotated[
        bool | None,
        typer.Option("--allow-loopback/--no-allow-loopback", help="Open 127.0.0.0/8 and ::1 (a server on this machine).", show_default="no"),
    ] = None,
    delay: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="Between requests to one host (0 to 3600).", show_default=f"{crawl_defaults.DOWNLOAD_DELAY:g}")
    ] = None,
    concurrency_per_host: Annotated[int | None, typer.Option(min=1, metavar="N", help="Requests in flight to one host.", show_default=str(crawl_defaults.CONCURRENT_REQUESTS_PER_DOMAIN))] = None,
    optout_list: Annotated[list[Path], typer.Option(metavar="FILE", help="A steward opt-out list to honour (repeatable).", show_default=False)] = [],
    render: Annotated[
        RenderMode | None,
        typer.Option(help="Render pages in Chromium: auto renders only pages that look script-built.", show_default=crawl_defaults.GALLERY_RENDER),
    ] = None,
    render_budget: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="One rendered page may take (1 to 600).", show_default=f"{crawl_defaults.GALLERY_RENDER_BUDGET:g}")
    ] = None,
    frontier: Annotated[str | None, typer.Option(metavar="REDIS_URL", help="redis://HOST:PORT/DB: share one frontier between workers.")] = None,
    jobdir: Annotated[Path | None, typer.Option(metavar="DIR", help="Keep the crawl's state here to pause and resume it.")] = None,
    page_cache: Annotated[
        str | None,
        typer.Option(
            metavar="DIR|off|auto",
            help="Keep fetched pages here, so a re-crawl asks if each changed; auto: <gallery>/page-cache for a local gallery.",
            show_default=crawl_defaults.GALLERY_PAGE_CACHE,
        ),
    ] = None,
    set_: Annotated[list[str], typer.Option("--set", "-s", metavar="NAME=VALUE", help="Any Scrapy setting, as `scrapy -s`.", show_default=False)] = [],
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Crawl SEED_URLs and everything they link to on the same hosts into the gallery."""
    from crawler.job import CrawlJob, JobError, load_job

    try:
        spec = load_job(job) if job is not None else CrawlJob()
        spec = spec.override(
            seeds=seeds,
            gallery=gallery,
            allowed_domains=allowed_domain,
            max_pages=max_pages,
            allow_loopback=allow_loopback,
            delay=delay,
            concurrency_per_host=concurrency_per_host,
            optout_lists=[str(p) for p in optout_list],
            render=render.value if render else None,
            frontier=frontier,
            jobdir=str(jobdir) if jobdir else None,
            page_cache=page_cache,
        ).validate()
    except JobError as exc:
        _fail(str(exc))
    for path in spec.optout_lists:
        _read_optout_file(Path(path))  # fail here, with the line, rather than mid-crawl
    settings = {}  # on top of the job's own
    if render_budget is not None:
        settings["GALLERY_RENDER_BUDGET"] = _validate_render_budget(render_budget)
    for item in set_:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            _fail(f"--set wants NAME=VALUE, got {item!r}")
        settings[name.strip()] = value
    notes = []  # said after the summary, so that an error stays the one line on stderr
    if spec.allow_loopback and spec.politeness.delay is None and all(_on_this_machine(seed) for seed in spec.seeds):
        notes.append(
            "every seed is on this machine: --delay 0 is fine for a server you own "
            f"(the default, {crawl_defaults.DOWNLOAD_DELAY:g} s per host, is for the open web)"
        )
    _crawl(spec, as_json, verbose=verbose, quiet=quiet, settings=settings, notes=notes)


def _validate_render_budget(seconds: float) -> float:
    if not math.isfinite(seconds) or not 1 <= seconds <= 600:
        _fail(f"--render-budget must be between 1 and 600 seconds, not {seconds}")
    return seconds


@app.command()
def search(
    image_files: Annotated[list[Path] | None, typer.Argument(help="Pictures to look for (several in one call: each call spends its start-up once).")] = None,
    hash_: Annotated[str | None, typer.Option("--hash", help="KIND:HEX, KIND one of phash, pdq, sha256.")] = None,
    max_distance: Annotated[int | None, typer.Option(min=0, help=f"Largest PDQ distance (default {MATCH_DISTANCE['pdq']}; with --hash, of its kind: phash {MATCH_DISTANCE['phash']}).")] = None,
    gallery: GalleryOption = "./gallery",
    as_json: JsonOption = False,
) -> None:
    """Find where pictures (or a hash of one) appear: exact files, the same picture resized,
    recompressed, mirrored or turned, pictures it was cropped out of and crops of it, each
    with how it matched (and which part), and every sighting."""
    from indexer.decode import ImageRejected
    from indexer.hashes import parse_hash
    from indexer.hash_index import GalleryHashIndex
    from indexer.matcher import query_picture
    from indexer.search import query_note, search_hash, search_picture

    if bool(image_files) == (hash_ is not None):
        _fail("give either IMAGE_FILE or --hash KIND:HEX")
    if hash_ is not None:
        try:
            kind, value = parse_hash(hash_)
        except ValueError as exc:
            _fail(str(exc))
        queries = {hash_: lambda: (search_hash(store, kind, value, max_distance=max_distance), None)}
    else:

        def by_picture(path: Path):
            picture = query_picture(path.read_bytes())
            hits = search_picture(store, picture, max_distance=max_distance, hash_index=hash_index)
            return hits, query_note(picture, hits)

        # One in-memory index for all the pictures (as the service keeps): without it each
        # picture costs a table scan per hash it looks up, some twenty.
        queries = {str(path): (lambda path=path: by_picture(path)) for path in image_files}
    store = _open_gallery(gallery)
    hash_index = GalleryHashIndex(store)  # built at the first picture's lookup
    results, notes, errors = {}, {}, {}
    for name, run in queries.items():
        try:
            results[name], notes[name] = run()
        except OSError as exc:
            errors[name] = f"cannot read {name}: {exc.strerror}"
        except ImageRejected as exc:
            errors[name] = f"{name} is not a usable image ({exc})"
    if len(queries) == 1 and errors:
        _fail(next(iter(errors.values())))
    if as_json:
        # Keyed per query; one query's matches and note are also at the top, as before several were taken.
        document = {"queries": {name: {"matches": [hit.to_json() for hit in hits], "note": notes[name]} for name, hits in results.items()}}
        document["queries"].update({name: {"error": error} for name, error in errors.items()})
        if len(queries) == 1:
            document.update(document["queries"][next(iter(queries))])
        _print_json(document)
    else:
        for name in queries:
            if len(queries) > 1:
                out.print(f"[bold]{name}[/bold]")
            if name in errors:
                typer.echo(f"error: {errors[name]}", err=True)
                continue
            _print_hits(results[name], indent="  " if len(queries) > 1 else "")
            if notes[name]:
                out.print(f"{'  ' if len(queries) > 1 else ''}note: {notes[name]}", highlight=False)
    if errors:
        raise typer.Exit(1)


def _print_hits(hits, *, indent: str) -> None:
    if not hits:
        out.print(f"{indent}no matches")
    for hit in hits:
        image, how = hit.image, hit.how
        out.print(
            f"{indent}[bold]{image['image_id'][:16]}…[/bold] {how.label}: {how.hash} distance {how.distance}, "
            f"{image['width']}x{image['height']} {image['format']}, {len(hit.sightings)} sighting(s)",
            highlight=False,
        )
        for s in hit.sightings:
            out.print(f"{indent}  {s['image_url']}  on  {s['page_url']}", highlight=False)


@app.command()
def stats(
    gallery: GalleryOption = "./gallery",
    exclusions: Annotated[bool, typer.Option(help="Also list every URL the last crawl was not allowed to take.")] = False,
    uncertain_faces: Annotated[bool, typer.Option(help="Also list images whose face detection scored just under the threshold, for review.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Counts of images, sightings and tombstones, faces masked, and what the last crawl blocked or skipped, by reason."""
    from crawler.run import summarize

    store = _open_gallery(gallery)
    document = store.counts()
    document["faces"] = store.face_counts()
    last = store.last_crawl()
    document["last_crawl"] = {"run_id": last["run_id"], "finished_at": last["finished_at"], **summarize(last)} if last else None
    if exclusions:
        rows = store.exclusions_of(last["run_id"]) if last else []
        document["exclusions"] = [{k: r[k] for k in ("url", "page_url", "reason", "at")} for r in rows]
    if uncertain_faces:
        flagged = store.face_uncertain_images()
        urls = {}
        for s in store.sightings_of([r["image_id"] for r in flagged]):
            urls.setdefault(s["image_id"], s["image_url"])
        document["uncertain_faces"] = [{**r, "image_url": urls.get(r["image_id"])} for r in flagged]
    if as_json:
        _print_json(document)
        return
    faces = document["faces"]
    out.print(f"images: {document['images']}  sightings: {document['sightings']}  tombstones: {document['tombstones']}")
    out.print(
        f"faces masked: {faces['faces_masked']} in {faces['images_with_faces_masked']} images; "
        f"{faces['images_face_uncertain']} images flagged for review (--uncertain-faces)"
    )
    if last:
        _print_crawl_summary(document["last_crawl"])
    for row in document.get("exclusions", []):
        out.print(f"{row['reason']:<24} {row['url']}" + (f"  (on {row['page_url']})" if row["page_url"] else ""))
    for row in document.get("uncertain_faces", []):
        out.print(f"face uncertain  {row['image_id'][:16]}…  {row['face_count']} masked  {row['image_url'] or ''}")


@app.command()
def serve(
    gallery: GalleryOption = "./gallery",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on, 1 to 65535.")] = 8000,
    steward_keys_file: Annotated[Path | None, typer.Option(help="Steward API keys, one a line (also GALLERY_STEWARD_KEYS).")] = None,
    search_keys_file: Annotated[Path | None, typer.Option(help="Search API keys; without any, search is open (also GALLERY_SEARCH_KEYS).")] = None,
) -> None:
    """Serve reverse image search and removal requests over HTTP, with a web page at /."""
    import uvicorn

    from gallery.service import ServiceConfig, create_app, load_keys

    if not 1 <= port <= 65535:
        _fail(f"--port must be between 1 and 65535, not {port}")
    try:
        steward = load_keys(env_var="GALLERY_STEWARD_KEYS", file=steward_keys_file)
        search_keys = load_keys(env_var="GALLERY_SEARCH_KEYS", file=search_keys_file)
        for option, file in (("--steward-keys-file", steward_keys_file), ("--search-keys-file", search_keys_file)):
            if file is not None and not load_keys(env_var="", file=file):
                # Given a keys file, the operator meant keys: serving open instead would be the opposite.
                _fail(f"{option} {file} holds no key (one a line); refusing to start")
    except OSError as exc:
        _fail(f"cannot read a key file: {exc}")
    if not steward:
        typer.echo("warning: no steward keys configured; removal requests will be refused", err=True)
    _open_gallery(gallery)
    app_ = create_app(ServiceConfig(gallery_uri=gallery, steward_keys=steward, search_keys=search_keys or None))
    uvicorn.run(app_, host=host, port=port, log_level="info")


ScrapydOption = Annotated[str | None, typer.Option("--scrapyd", help="Scrapyd's URL (default: scrapy.cfg's [deploy] url).")]


@app.command()
def schedule(
    job: Annotated[Path, typer.Option(help="The crawl job (TOML) to run on Scrapyd.")],
    scrapyd: ScrapydOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a crawl job on Scrapyd (the project deployed there with scrapyd-deploy)."""
    from crawler.job import JobError, load_job
    from crawler.scrapyd import ScrapydError, deploy_target
    from crawler.scrapyd import schedule as schedule_job

    url, project = deploy_target()
    try:
        spec = load_job(job).validate()
        job_id = schedule_job(spec, url=scrapyd or url, project=project)
    except (JobError, ScrapydError) as exc:
        _fail(str(exc))
    _print_json({"jobid": job_id}) if as_json else out.print(f"scheduled job {job_id} on {scrapyd or url}")


@app.command()
def jobs(scrapyd: ScrapydOption = None, as_json: JsonOption = False) -> None:
    """Scrapyd's pending, running and finished crawl jobs."""
    from crawler.scrapyd import ScrapydError, deploy_target, list_jobs

    url, project = deploy_target()
    try:
        listed = list_jobs(url=scrapyd or url, project=project)
    except ScrapydError as exc:
        _fail(str(exc))
    if as_json:
        _print_json(listed)
        return
    for state, entries in listed.items():
        for entry in entries:
            out.print(f"{state:<9} {entry['id']}  {entry.get('start_time') or ''}  {entry.get('end_time') or ''}")
    if not any(listed.values()):
        out.print("no jobs")


def main() -> None:
    app()


# Registered last: those commands use this module's helpers and app.
import gallery.dataset_commands  # noqa: E402,F401
import gallery.steward_commands  # noqa: E402,F401
