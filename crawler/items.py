"""What the spider hands to the pipeline."""

from dataclasses import dataclass


@dataclass
class ImageItem:
    image_url: str
    page_url: str
    alt_text: str | None
    license_url: str | None
    rendered: bool
    policy: str  # the checks this image (and its page) passed, for the sighting's provenance
    found_via: str | None = None  # how the URL was found: crawler.extract's VIA_* names
    http_status: int = 0
    # The downloaded bytes; None when this image URL was already fetched for another page
    # and this item only records one more sighting of it, or when the server answered 304.
    body: bytes | None = None
    etag: str | None = None  # the image response's validators, kept for the next crawl
    last_modified: str | None = None
    # Filled in by the pipeline, so a skip is data: "stored", "duplicate", "sighting",
    # "not_modified", "skipped". Set by the spider on a 304: the stored image it confirms.
    status: str = "pending"
    error_message: str | None = None
    image_id: str | None = None
