"""Rights metadata embedded in the image file itself: the PLUS "Data Mining" property in XMP."""

import re

from robots_policy.decision import Decision

# plus:DataMining as an attribute (plus:DataMining="..."), an element with text, or an element
# with rdf:resource; values are PLUS vocabulary URIs ending in e.g. DMI-PROHIBITED-AIMLTRAINING.
_DATA_MINING = re.compile(
    rb"DataMining(?:"
    rb"\s*=\s*[\"']([^\"']*)[\"']"
    rb"|[^>]*?rdf:resource\s*=\s*[\"']([^\"']*)[\"']"
    rb"|\s*>\s*([^<]*)<"
    rb")",
    re.IGNORECASE,
)

MAX_XMP_BYTES = 1024 * 1024


def check_xmp(xmp: bytes) -> Decision:
    """Any DMI-PROHIBITED* value of plus:DataMining excludes the image."""
    for match in _DATA_MINING.finditer(xmp[:MAX_XMP_BYTES]):
        value = b"".join(group for group in match.groups() if group)
        if b"DMI-PROHIBITED" in value.upper():
            return Decision.block("xmp_data_mining")
    return Decision.allow("xmp:none" if not xmp else "xmp:ok")
