"""The rights report's data: what was crawled, what was left out and why, removals, faces and
licences, gathered from the gallery's tables as one JSON-ready dict. gallery/report.py draws it."""

import json
from collections import Counter, defaultdict
from datetime import datetime
from urllib.parse import urlsplit

import pyarrow.compute as pc

from indexer.removal import list_removals
from indexer.store import Gallery, utcnow
from robots_policy.domains import registrable_domain

TOP_DOMAINS = 20
TOP_LICENCES = 10
EXAMPLES = 3  # example URLs per (reason, domain)

# Reasons a reader should find by name: the site's or the file's own reservation, the steward's.
REASON_NOTES = {
    "xmp_data_mining": "reserved by the image's own metadata (XMP plus:DataMining)",
    "optout": "a steward opt-out",
    "tombstone": "a removal tombstone (counted only; the URL is never written down again)",
    "robots": "robots.txt",
    "robots_unreachable": "robots.txt could not be read (RFC 9309: disallow all)",
    "address_loopback": "a loopback address (crawls are kept off it unless --allow-loopback)",
}


def build_report(gallery: Gallery, *, now: datetime | None = None) -> dict:
    now = now or utcnow()
    gallery.refresh()
    images = gallery.images.to_lance().to_table(columns=["image_id", "face_count", "first_seen"])
    sightings = gallery.sightings.to_lance().to_table(columns=["image_id", "page_url", "domain", "license_url", "fetched_at"])
    runs = [{**r, "stats": json.loads(r.pop("stats_json") or "{}")} for r in gallery.crawl_runs.to_arrow().to_pylist()]
    runs.sort(key=lambda r: r["finished_at"])
    return {
        "generated_at": now.isoformat(),
        "gallery": gallery.uri,
        "totals": {
            "images": images.num_rows,
            "sightings": sightings.num_rows,
            "pages_with_images": len(pc.unique(sightings["page_url"])),
            "domains": len(pc.unique(sightings["domain"])),
            "crawls": len(runs),
            "pages_crawled": sum(r["stats"].get("crawl/pages", 0) for r in runs),
        },
        "crawled": _crawled(images, sightings, runs),
        "left_out": _left_out(gallery, runs),
        "removals": _removals(gallery, now),
        "faces": _faces(images),
        "licences": _licences(sightings),
    }


def _per_day(column) -> list[dict]:
    days = Counter(value.date().isoformat() for value in column.to_pylist() if value is not None)
    return [{"day": day, "count": days[day]} for day in sorted(days)]


def _crawled(images, sightings, runs) -> dict:
    by_domain = defaultdict(lambda: {"sightings": 0, "images": set(), "pages": set()})
    for domain, image_id, page in zip(*(sightings[c].to_pylist() for c in ("domain", "image_id", "page_url"))):
        entry = by_domain[domain or "(none)"]
        entry["sightings"] += 1
        entry["images"].add(image_id)
        entry["pages"].add(page)
    top = sorted(by_domain.items(), key=lambda kv: (-kv[1]["sightings"], kv[0]))[:TOP_DOMAINS]
    pages_per_day = Counter()
    for run in runs:
        pages_per_day[run["finished_at"].date().isoformat()] += run["stats"].get("crawl/pages", 0)
    return {
        "crawls": [
            {
                "run_id": r["run_id"],
                "finished_at": r["finished_at"].isoformat(),
                "pages": r["stats"].get("crawl/pages", 0),
                "images_stored": r["stats"].get("indexer/stored", 0),
                "sightings_written": r["stats"].get("indexer/rows/sightings", 0),
                "finish_reason": r["stats"].get("finish_reason"),
            }
            for r in runs
        ],
        "over_time": {
            "pages": [{"day": d, "count": pages_per_day[d]} for d in sorted(pages_per_day)],
            "images": _per_day(images["first_seen"]),
            "sightings": _per_day(sightings["fetched_at"]),
        },
        "top_domains": [
            {"domain": d, "sightings": e["sightings"], "images": len(e["images"]), "pages": len(e["pages"])} for d, e in top
        ],
        "domains_not_shown": max(0, len(by_domain) - TOP_DOMAINS),
    }


def _left_out(gallery: Gallery, runs: list[dict]) -> dict:
    """Every reason any crawl counted, summed over crawls, and the exclusion log per domain."""
    totals: dict[str, Counter] = {"blocked": Counter(), "skipped": Counter()}
    for run in runs:
        for key, value in run["stats"].items():
            for group, prefixes in (("blocked", ("policy/blocked/",)), ("skipped", ("indexer/skipped/", "crawl/skipped/"))):
                for prefix in prefixes:
                    if key.startswith(prefix) and isinstance(value, int):
                        totals[group][key.removeprefix(prefix)] += value
    per_domain: dict[str, dict[str, dict]] = defaultdict(dict)
    for row in gallery.exclusions.to_arrow().select(["url", "reason"]).to_pylist():
        domain = _domain(row["url"])
        entry = per_domain[row["reason"]].setdefault(domain, {"domain": domain, "count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < EXAMPLES and row["url"] not in entry["examples"]:
            entry["examples"].append(row["url"])
    reasons = set(totals["blocked"]) | set(per_domain)
    return {
        "blocked": [
            {
                "reason": reason,
                "note": REASON_NOTES.get(reason),
                "count": max(totals["blocked"].get(reason, 0), sum(e["count"] for e in per_domain.get(reason, {}).values())),
                "domains": sorted(per_domain.get(reason, {}).values(), key=lambda e: (-e["count"], e["domain"])),
            }
            for reason in sorted(reasons, key=lambda r: (-totals["blocked"].get(r, 0), r))
        ],
        "skipped": [{"reason": r, "count": c} for r, c in totals["skipped"].most_common()],
        "reserved_by_metadata": totals["blocked"].get("xmp_data_mining", 0),
        "optouts_matched": sum(c for r, c in totals["blocked"].items() if r.startswith("optout")),
        "tombstones_matched": totals["blocked"].get("tombstone", 0),
        "optout_entries": len(gallery.optout_entries()),
        "tombstones": dict(Counter(r["kind"] for r in gallery.tombstone_rows())),
    }


def _domain(url: str) -> str:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return "(unparsable URL)"
    return registrable_domain(host) if host else "(no host)"


def _removals(gallery: Gallery, now: datetime) -> dict:
    statuses = list_removals(gallery, now=now)
    by_basis: dict[str, dict] = {}
    for s in statuses:
        entry = by_basis.setdefault(s.basis or "other", {"basis": s.basis or "other", "requests": 0, "rows_removed": 0})
        entry["requests"] += 1
        entry["rows_removed"] += s.rows_removed or 0
    deadlines = Counter()
    for s in statuses:
        if s.deadline is None:
            continue
        if s.purged_at is not None:
            deadlines["met" if s.purged_at <= s.deadline else "late"] += 1
        else:
            deadlines["late" if s.deadline < now else "open"] += 1
    return {
        "requests": len(statuses),
        "by_basis": sorted(by_basis.values(), key=lambda e: -e["requests"]),
        "rows_removed": sum(s.rows_removed or 0 for s in statuses),
        "purge_verified": sum(1 for s in statuses if s.state == "done" and s.purged_at is not None),
        "incomplete": sum(1 for s in statuses if s.state != "done"),
        "erasure_deadlines": {"met": deadlines["met"], "late": deadlines["late"], "open": deadlines["open"]},
        "attention": [s.request_id for s in statuses if s.flag],
    }


def _faces(images) -> dict:
    with_faces = pc.sum(pc.greater(pc.fill_null(images["face_count"], 0), 0)).as_py() or 0
    return {
        "images_with_faces_pixelated": with_faces,
        "faces_pixelated": pc.sum(images["face_count"]).as_py() or 0,
        "share": with_faces / images.num_rows if images.num_rows else 0.0,
    }


def _licences(sightings) -> dict:
    urls = [u for u in sightings["license_url"].to_pylist() if u]
    counts = Counter(urls)
    return {
        "sightings_with_licence": len(urls),
        "share": len(urls) / sightings.num_rows if sightings.num_rows else 0.0,
        "top": [{"url": u, "sightings": c} for u, c in counts.most_common(TOP_LICENCES)],
    }
