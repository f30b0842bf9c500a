"""What the spider hands to the pipeline: the fields of a sighting that the crawler fills in,
taken from their one definition (indexer/records.py `Sighting`, marked `crawled`), plus what
the pipeline needs beyond the row."""

from dataclasses import MISSING, field, make_dataclass

from indexer.records import Sighting, crawled_fields

# A sighting's crawled fields, by name: what a parked sighting keeps while it waits for its image.
SIGHTING_FIELDS = tuple(f.name for f in crawled_fields(Sighting))


def _sighting_fields():
    for f in crawled_fields(Sighting):
        yield f.name, f.type, field() if f.default is MISSING else field(default=f.default)


ImageItem = make_dataclass(
    "ImageItem",
    [
        *_sighting_fields(),
        # The downloaded bytes; None when this image URL was already fetched for another page
        # and this item only records one more sighting of it, or when the server answered 304.
        ("body", bytes | None, field(default=None)),
        # Set by the spider on a 304: the stored image it confirms.
        ("image_id", str | None, field(default=None)),
    ],
    kw_only=True,
)
ImageItem.__module__ = __name__  # so it pickles by name, as a class written here would
