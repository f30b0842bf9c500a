"""Selector kinds: what a removal request can name. Each kind is one class that says how its
text is checked, how it finds rows, and which tombstones it leaves; a new kind is one more
class in SELECTORS (plus its command-line option in gallery/cli.py).

URL kinds find rows through the never-collect matcher (robots_policy/never_collect.py), the
same one the crawler asks before a request; picture kinds through the gallery's hashes.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol
from urllib.parse import urlsplit

from indexer.decode import ImageRejected, decode_bounded
from indexer.hashes import parse_hash
from indexer.matcher import HashSource, QueryPicture, Variant, decoded_query_picture, match
from indexer.regions import STORED_REGIONS, region_hashes, unpack_regions
from indexer.removal.errors import RequestError
from robots_policy.domains import registrable_domain
from robots_policy.match_thresholds import MATCH_DISTANCE
from robots_policy.never_collect import Entry, canonical_url


class PictureLookup(HashSource, Protocol):
    """The gallery's images as planning sees them (indexer/removal/planning.py): the matcher's
    hash source, plus distances for a lookup by one hash."""

    def within(self, kind: str, value: bytes, max_distance: int) -> dict[str, int]:
        """image_id -> Hamming distance for every stored image within max_distance."""


@dataclass(frozen=True)
class PictureMatch:
    exact: frozenset[str] = frozenset()  # image ids with the same bytes (or distance 0)
    found: frozenset[str] = frozenset()  # near matches seen
    removed: frozenset[str] = frozenset()  # near matches confident enough to delete


@dataclass(frozen=True)
class Selector:
    kind: ClassVar[str]
    value: str  # canonical: URL, prefix or domain; KIND:HEX for a hash; sha256:HEX of the file for an image

    @classmethod
    def parse(cls, text: str) -> "Selector":
        """From the text a steward wrote; RequestError if it is not usable."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"kind": self.kind, "value": self.value}

    def notes(self) -> list[str]:
        """Warnings for the steward about what this selector will (not) reach."""
        return []

    def url_entry(self) -> Entry | None:
        """URL kinds: the never-collect entry rows are matched with (sightings, exclusions)."""
        return None

    def match_pictures(self, pictures: PictureLookup) -> PictureMatch:
        """Picture kinds: the images this selector names."""
        return PictureMatch()

    def tombstones(self, request_id: str) -> list[Entry]:
        """What must never come back once this selector's rows are gone."""
        raise NotImplementedError


class _UrlSelector(Selector):
    def url_entry(self) -> Entry:
        return Entry(self.kind, self.value)

    def tombstones(self, request_id: str) -> list[Entry]:
        return [Entry(self.kind, self.value)]


@dataclass(frozen=True)
class UrlSelector(_UrlSelector):
    kind: ClassVar[str] = "url"

    @classmethod
    def parse(cls, text: str) -> "UrlSelector":
        return cls(_http_url(cls.kind, text, prefix=False))


@dataclass(frozen=True)
class UrlPrefixSelector(_UrlSelector):
    kind: ClassVar[str] = "url_prefix"

    @classmethod
    def parse(cls, text: str) -> "UrlPrefixSelector":
        return cls(_http_url(cls.kind, text, prefix=True))


@dataclass(frozen=True)
class DomainSelector(_UrlSelector):
    kind: ClassVar[str] = "domain"

    @classmethod
    def parse(cls, text: str) -> "DomainSelector":
        domain = text.lower().rstrip(".").strip("[]")
        if any(c in domain for c in "/?#@ ") or (":" in domain and "." in domain):
            raise RequestError(f"domain {text!r} is not a host name (use --url-prefix for a URL)")
        if registrable_domain("a.b." + domain) == "b." + domain:
            raise RequestError(f"{domain!r} is a public suffix, not a domain: it would match every site under it")
        return cls(domain)

    def notes(self) -> list[str]:
        registrable = registrable_domain(self.value)
        if registrable != self.value:
            return [f"{self.value} is a subdomain of {registrable}: only it and its subdomains match"]
        return []


@dataclass(frozen=True)
class HashSelector(Selector):
    kind: ClassVar[str] = "hash"

    @classmethod
    def parse(cls, text: str) -> "HashSelector":
        if ":" not in text and all(c in "0123456789abcdefABCDEF" for c in text):
            raise RequestError(
                "a bare hex string is ambiguous (PDQ and sha256 are both 64 hex digits): write it as "
                "pdq:HEX, phash:HEX or sha256:HEX"
            )
        try:
            kind, raw = parse_hash(text)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        return cls(f"{kind}:{raw.hex()}")

    def match_pictures(self, pictures: PictureLookup) -> PictureMatch:
        kind, raw = parse_hash(self.value)
        hits = pictures.within(kind, raw, MATCH_DISTANCE[kind])
        exact = frozenset(i for i, d in hits.items() if kind == "sha256" or d == 0)
        near = frozenset(hits) - exact
        return PictureMatch(exact, near, near)

    def tombstones(self, request_id: str) -> list[Entry]:
        kind, hexed = self.value.split(":", 1)
        return [Entry(kind, hexed)]


@dataclass(frozen=True)
class ImageSelector(Selector):
    kind: ClassVar[str] = "image"
    # The picture's hash variants (turned, mirrored, transparency on white and black; see
    # indexer/matcher.py), computed when the request is parsed so an undecodable file fails
    # before anything is written. Empty for a flat or blank picture: its exact bytes only.
    variants: tuple[Variant, ...] = ()
    # Its stored regions' hashes (indexer/regions.py), so a crop of it is refused at a later crawl.
    regions: bytes = b""

    @classmethod
    def parse(cls, text: str) -> "ImageSelector":
        path = Path(text)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RequestError(f"cannot read {path}: {exc.strerror}") from None
        try:
            decoded = decode_bounded(data)
            picture = decoded_query_picture(data, decoded, whole_only=True)
        except ImageRejected as exc:
            raise RequestError(f"{path} is not a usable image ({exc})") from None
        if picture.low_information:
            return cls(f"sha256:{picture.sha256}")  # never every blank picture
        return cls(f"sha256:{picture.sha256}", variants=picture.variants, regions=region_hashes(decoded.image))

    def match_pictures(self, pictures: PictureLookup) -> PictureMatch:
        picture = QueryPicture(self.value.split(":", 1)[1], self.variants)
        if not self.variants:
            exact = frozenset(pictures.within("sha256", bytes.fromhex(picture.sha256), 0))
            return PictureMatch(exact)
        found = match(pictures, picture)
        exact = frozenset(row["image_id"] for row, how in found if how.kind == "exact")
        near = frozenset(row["image_id"] for row, how in found if how.kind != "exact")
        # Deleting needs both hashes to agree: a resize, recompression, mirror or turn moves
        # both a little; two different pictures rarely land close on both.
        agreed = frozenset(row["image_id"] for row, how in found if how.kind != "exact" and how.confident)
        return PictureMatch(exact, near, agreed)

    def tombstones(self, request_id: str) -> list[Entry]:
        entries = [Entry("sha256", self.value.split(":", 1)[1])]
        for index, variant in enumerate(self.variants):
            # One group per variant: its pHash and PDQ must match together (DESIGN.md). A crawl
            # hashes each new picture once, upright; the variants catch turned and mirrored copies.
            group = f"{request_id}:{self.value}:{index}"
            entries += [Entry("pdq", variant.hashes.pdq.hex(), group), Entry("phash", variant.hashes.phash.hex(), group)]
        if self.regions:
            # A new picture whose hashes are those of one of its regions (both agreeing, as for
            # a whole picture) is a crop of it: the same test as the matcher's "contains".
            pdq, phash = unpack_regions([self.regions])
            for name, region_pdq, region_phash in zip(STORED_REGIONS, pdq[0], phash[0]):
                if region_pdq.any():  # a flat region is stored as zeros and matches nothing
                    group = f"{request_id}:{self.value}:{name}"
                    entries += [Entry("pdq", region_pdq.tobytes().hex(), group), Entry("phash", region_phash.tobytes().hex(), group)]
        return entries


SELECTORS: dict[str, type[Selector]] = {
    cls.kind: cls for cls in (UrlSelector, UrlPrefixSelector, DomainSelector, ImageSelector, HashSelector)
}
SELECTOR_KINDS = tuple(SELECTORS)


def parse_selector(kind: str, value: str) -> Selector:
    """One selector from its option name (url, url-prefix, domain, image, hash) and text."""
    kind = kind.strip().lower().replace("-", "_")
    value = (value or "").strip()
    if kind not in SELECTORS:
        raise RequestError(f"unknown selector {kind!r}: expected one of {', '.join(SELECTOR_KINDS)}")
    if not value:
        raise RequestError(f"{kind} selector has no value")
    return SELECTORS[kind].parse(value)


def _http_url(kind: str, text: str, *, prefix: bool) -> str:
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise RequestError(f"{kind} {text!r} is not an http(s) URL")
    return canonical_url(text, prefix=prefix)
