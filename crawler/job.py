"""Crawl jobs: one TOML file says what to crawl, where to put it and how politely, so the same
crawl can be run by hand (`gallery crawl --job`), scheduled on Scrapyd, or run by many workers.

```toml
seeds = ["https://example.org/"]
allowed_domains = ["cdn.example.org"]
max_pages = 500
render = "auto"                   # never | always | auto
optout_lists = ["optout.txt"]     # relative paths are relative to the job file
gallery = "s3://bucket/gallery"   # a directory or an object-store URI
allow_loopback = false
frontier = "redis://127.0.0.1:6379/0"   # optional: share the crawl between workers
jobdir = "state/example"                # optional: pause and resume (one machine)
page_cache = "cache/pages"              # optional: kept pages for conditional re-crawls; "off", or
                                        # "auto" (default: inside a local gallery, off for s3://)

[politeness]
delay = 1.0                 # seconds between requests to one host
concurrency_per_host = 2
```
"""

import logging
import math
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import idna

from crawler.config import RENDER_MODES

logger = logging.getLogger(__name__)

# tomllib's messages end in "(at line L, column C)"; 3.11 has no attribute for either.
_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


class JobError(ValueError):
    """A job file or job value that cannot be used; the message is one line, with the place."""

    def __init__(self, message: str, *, key: str | None = None):
        super().__init__(message)
        self.key = key  # the job key at fault, so a file's line can be named


def _key(toml_type, *, setting: str | None = None, spider_arg: bool = False, **kwargs):
    """A job key: the TOML type a job file gives it, and where it goes: the Scrapy setting it
    sets, or an argument of the `images` spider. Every runner (this process, Scrapyd, the
    workers of a frontier) reads the job through these, so a new key is one field."""
    return field(metadata={"toml": toml_type, "setting": setting, "spider_arg": spider_arg}, **kwargs)


@dataclass(frozen=True)
class Politeness:
    delay: float | None = _key((int, float), setting="DOWNLOAD_DELAY", default=None)  # None keeps the project's default
    concurrency_per_host: int | None = _key(int, setting="CONCURRENT_REQUESTS_PER_DOMAIN", default=None)


@dataclass(frozen=True)
class CrawlJob:
    seeds: tuple[str, ...] = _key(list, spider_arg=True, default=())
    allowed_domains: tuple[str, ...] = _key(list, spider_arg=True, default=())
    max_pages: int | None = _key(int, spider_arg=True, default=None)
    render: str = _key(str, setting="GALLERY_RENDER", default="auto")
    optout_lists: tuple[str, ...] = _key(list, setting="POLICY_OPTOUT_FILES", default=())
    gallery: str = _key(str, setting="GALLERY_URI", default="./gallery")
    allow_loopback: bool = _key(bool, setting="POLICY_ALLOW_LOOPBACK", default=False)
    politeness: Politeness = _key(dict, default_factory=Politeness)
    frontier: str | None = _key(str, setting="GALLERY_FRONTIER", default=None)  # redis://HOST:PORT/DB
    jobdir: str | None = _key(str, setting="JOBDIR", default=None)
    # A directory, "auto" or "off"; None: the project's default ("auto").
    page_cache: str | None = _key(str, setting="GALLERY_PAGE_CACHE", default=None)

    def override(self, **given) -> "CrawlJob":
        """This job with every value that was given (not None, not empty) replacing its own."""
        politeness = {k: given.pop(k) for k in ("delay", "concurrency_per_host") if k in given}
        changes = {k: v for k, v in given.items() if v is not None and v != () and v != []}
        for name in ("seeds", "allowed_domains", "optout_lists"):
            if name in changes:
                changes[name] = tuple(changes[name])
        politeness = {k: v for k, v in politeness.items() if v is not None}
        if politeness:
            changes["politeness"] = replace(self.politeness, **politeness)
        return replace(self, **changes)

    def validate(self, *, require_seeds: bool = True) -> "CrawlJob":
        if require_seeds and not self.seeds:
            raise JobError("no seeds: give SEED_URL... or a job file with seeds = [...]", key="seeds")
        seeds = []
        for seed in self.seeds:
            clean, warning = validate_seed(seed)
            if warning:
                logger.warning("warning: %s", warning)  # once: the cleaned seed warns no more
            seeds.append(clean)
        seeds = tuple(seeds)
        allowed_domains = tuple(validate_domain(domain) for domain in self.allowed_domains)
        if self.render not in RENDER_MODES:
            raise JobError(f"render must be one of {', '.join(RENDER_MODES)}, not {self.render!r}", key="render")
        if self.max_pages is not None and self.max_pages < 1:
            raise JobError(f"max_pages must be at least 1, not {self.max_pages}", key="max_pages")
        if self.frontier is not None and urlsplit(self.frontier).scheme not in ("redis", "rediss", "unix"):
            raise JobError(f"frontier must be a redis:// URL, not {self.frontier!r}", key="frontier")
        if self.frontier is not None and self.jobdir is not None:
            # The frontier lives in Redis then; a JOBDIR would only hold a stale second copy.
            raise JobError("give either frontier (many workers) or jobdir (one machine), not both", key="jobdir")
        if self.page_cache is not None and "://" in self.page_cache:
            raise JobError(f"page_cache must be a local directory, 'auto' or 'off', not {self.page_cache!r}", key="page_cache")
        delay, per_host = self.politeness.delay, self.politeness.concurrency_per_host
        if delay is not None:
            validate_delay(delay)
        if per_host is not None and per_host < 1:
            raise JobError(f"politeness.concurrency_per_host must be at least 1, not {per_host}", key="concurrency_per_host")
        return replace(self, seeds=seeds, allowed_domains=allowed_domains)

    def settings(self) -> dict:
        """The Scrapy settings this job sets: every key with a setting that has a value."""
        settings: dict = {}
        for record in (self, self.politeness):
            for f in fields(record):
                value = getattr(record, f.name)
                if f.metadata["setting"] is None or value in (None, ""):
                    continue
                settings[f.metadata["setting"]] = list(value) if isinstance(value, tuple) else value
        return settings

    def spider_args(self) -> dict[str, str]:
        """The `images` spider's arguments, as strings (the form `scrapy crawl -a` and Scrapyd pass)."""
        args = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["spider_arg"] and value not in (None, ()):
                args[f.name] = ",".join(value) if isinstance(value, tuple) else str(value)
        return args



# A delay longer than an hour is a mistake, not politeness (and inf would wait forever, deaf to SIGTERM).
MAX_DELAY = 3600.0


def validate_delay(delay: float) -> float:
    if math.isfinite(delay) and delay < 0:
        raise JobError(f"politeness.delay must not be negative, not {delay}", key="delay")
    if not math.isfinite(delay) or delay > MAX_DELAY:
        raise JobError(f"politeness.delay must be a number of seconds up to {MAX_DELAY:g}, not {delay}", key="delay")
    return delay


def _ascii_host(host: str, what: str) -> str:
    """An internationalised host name in its ASCII (punycode) form, as DNS and HTTP want it."""
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise JobError(f"{what} is not a valid internationalised domain name: {exc}", key="seeds") from None


def validate_seed(seed: str) -> tuple[str, str | None]:
    """The seed as it will be crawled: host in ASCII, credentials removed. Also a warning to
    show when credentials were removed (naming the user, never the password)."""
    parts = urlsplit(seed.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobError(f"seed {_redacted(seed)!r} is not an http(s) URL", key="seeds")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise JobError(f"seed {_redacted(seed)!r}: port must be between 1 and 65535", key="seeds")
    host = _ascii_host(parts.hostname, f"seed {_redacted(seed)!r}")
    if parts.username is None and parts.password is None and parts.hostname.isascii():
        return seed, None  # nothing to change: the seed stays as written
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{port}" if port is not None else ""
    warning = None
    if parts.username is not None or parts.password is not None:
        # Credentials would be sent to every host the crawl reaches and kept in the gallery's rows.
        warning = f"seed {_redacted(seed)!r}: credentials removed; they are neither sent nor stored"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), warning


def validate_domain(domain: str) -> str:
    if not domain.strip() or "/" in domain or ":" in domain:
        raise JobError(f"allowed domain {domain!r} is not a host name", key="allowed_domains")
    return _ascii_host(domain.strip().rstrip("."), f"allowed domain {domain!r}")


def _redacted(url: str) -> str:
    """The URL with any password replaced, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


_TYPES = {f.name: f.metadata["toml"] for f in fields(CrawlJob)}
_POLITENESS_TYPES = {f.name: f.metadata["toml"] for f in fields(Politeness)}


def load_job(path: Path) -> CrawlJob:
    """Read and check a job file. Relative paths in it (opt-out lists, a gallery or jobdir
    directory) are taken relative to the file, so a job means the same from any directory."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JobError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise JobError(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise JobError(f"{path}: arrays or tables nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _POSITION.search(message)
        where = f"{path}:{match.group(1)}" if match else str(path)
        raise JobError(f"{where}: {_POSITION.sub('', message)}") from None

    def fail(key: str, reason: str):
        raise JobError(f"{path}:{_line_of(text, key)}: {reason}")

    for key, value in data.items():
        expected = _TYPES.get(key)
        if expected is None:
            fail(key, f"unknown key {key!r} (known: {', '.join(_TYPES)})")
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            fail(key, f"{key} must be {_type_name(expected)}, not {type(value).__name__}")
        if expected is list and not all(isinstance(v, str) for v in value):
            fail(key, f"{key} must be a list of strings")
    for key, value in data.get("politeness", {}).items():
        expected = _POLITENESS_TYPES.get(key)
        if expected is None:
            fail(key, f"unknown key politeness.{key} (known: {', '.join(_POLITENESS_TYPES)})")
        if not isinstance(value, expected) or isinstance(value, bool):
            fail(key, f"politeness.{key} must be a number, not {type(value).__name__}")

    base = path.resolve().parent
    values = {k: v for k, v in data.items() if k != "politeness"}
    for key in ("seeds", "allowed_domains"):
        if key in values:
            values[key] = tuple(values[key])
    if "optout_lists" in values:
        values["optout_lists"] = tuple(str(base / p) for p in values["optout_lists"])
    if "jobdir" in values:
        values["jobdir"] = str(base / values["jobdir"])
    if values.get("page_cache") not in (None, "auto", "off") and "://" not in values["page_cache"]:
        values["page_cache"] = str(base / values["page_cache"])
    if "gallery" in values and "://" not in values["gallery"]:
        values["gallery"] = str(base / values["gallery"])
    job = CrawlJob(**values, politeness=Politeness(**data.get("politeness", {})))
    try:
        return job.validate(require_seeds=False)  # seeds may still come from the command line
    except JobError as exc:
        raise JobError(f"{path}:{_line_of(text, exc.key or '')}: {exc}", key=exc.key) from None


def _line_of(text: str, key: str) -> int:
    """The line a key is set on (tomllib keeps no positions for parsed values); 1 if not found."""
    pattern = re.compile(rf"^\s*(\w+\.)?{re.escape(key)}\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return 1


def _type_name(expected) -> str:
    return {list: "a list", int: "an integer", str: "a string", bool: "true or false", dict: "a table"}[expected]
