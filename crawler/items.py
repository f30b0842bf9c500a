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
    http_status: int = 0
    # The downloaded bytes; None when this image URL was already fetched for another page
    # and this item only records one more sighting of it.
    body: bytes | None = None
    # Filled in by the pipeline, so a skip is data: "stored", "duplicate", "sighting", "skipped".
    status: str = "pending"
    error_message: str | None = None
    image_id: str | None = None
