"""The rights report as one self-contained HTML page: charts drawn as inline SVG, no script,
no network at view time (a Content-Security-Policy says so to the browser, too)."""

from html import escape

CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1d2330}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ccd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0}td,th{padding:.2rem .7rem;border-bottom:1px solid #e4e6ee;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#667}.big{font-size:1.25rem;font-weight:600}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #dde;border-radius:6px;padding:.6rem 1rem;min-width:8rem}
svg text{font:12px system-ui,sans-serif;fill:#1d2330}code{font-size:.85em;word-break:break-all}
"""
BAR = "#3b6fb6"


def _n(value) -> str:
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def bar_chart(rows: list[tuple[str, int]], *, title: str, width: int = 640) -> str:
    """Horizontal bars, one per (label, value)."""
    if not rows:
        return f'<p class="muted">{escape(title)}: nothing to show.</p>'
    label_w, row_h = 220, 22
    top = max(v for _, v in rows) or 1
    height = row_h * len(rows) + 10
    parts = [f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for i, (label, value) in enumerate(rows):
        y = 5 + i * row_h
        w = max(1, int((width - label_w - 70) * value / top))
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end"><title>{escape(label)}</title>{escape(short)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{row_h - 6}" fill="{BAR}"/>')
        parts.append(f'<text x="{label_w + w + 6}" y="{y + 15}">{value:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def column_chart(series: list[dict], *, title: str, width: int = 640, height: int = 160) -> str:
    """Columns per day ({day, count}), the first and last day labelled."""
    if not series:
        return f'<p class="muted">{escape(title)}: nothing to show.</p>'
    top = max(p["count"] for p in series) or 1
    plot_h = height - 40
    step = (width - 20) / len(series)
    parts = [f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    parts.append(f'<text x="10" y="14">{escape(title)} (most in a day: {top:,})</text>')
    for i, point in enumerate(series):
        h = max(1, int(plot_h * point["count"] / top))
        x = 10 + i * step
        parts.append(
            f'<rect x="{x:.1f}" y="{20 + plot_h - h}" width="{max(1.0, step - 2):.1f}" height="{h}" fill="{BAR}">'
            f'<title>{escape(point["day"])}: {point["count"]:,}</title></rect>'
        )
    parts.append(f'<text x="10" y="{height - 4}">{escape(series[0]["day"])}</text>')
    if len(series) > 1:
        parts.append(f'<text x="{width - 10}" y="{height - 4}" text-anchor="end">{escape(series[-1]["day"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list], *, numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{_n(c)}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card(label: str, value: str) -> str:
    return f'<div class="card"><div class="muted">{escape(label)}</div><div class="big">{value}</div></div>'


def render_report(data: dict) -> str:
    t, crawled, left, removals = data["totals"], data["crawled"], data["left_out"], data["removals"]
    faces, licences = data["faces"], data["licences"]
    sections = [
        f"<h1>Rights report</h1><p class=\"muted\">Gallery <code>{escape(data['gallery'])}</code>, "
        f"generated {escape(data['generated_at'])}.</p>",
        '<div class="cards">'
        + _card("images", _n(t["images"]))
        + _card("sightings", _n(t["sightings"]))
        + _card("domains", _n(t["domains"]))
        + _card("crawls", _n(t["crawls"]))
        + _card("pages crawled", _n(t["pages_crawled"]))
        + "</div>",
        '<h2 id="crawled">What was crawled</h2>',
        column_chart(crawled["over_time"]["pages"], title="pages crawled per day"),
        column_chart(crawled["over_time"]["images"], title="new images per day"),
        column_chart(crawled["over_time"]["sightings"], title="sightings per day (last fetch)"),
        f"<h3>Top {len(crawled['top_domains'])} domains by sightings</h3>",
        bar_chart([(d["domain"], d["sightings"]) for d in crawled["top_domains"]], title="sightings per domain"),
        _table(
            ["domain", "sightings", "images", "pages"],
            [[escape(d["domain"]), d["sightings"], d["images"], d["pages"]] for d in crawled["top_domains"]],
            numeric={1, 2, 3},
        ),
        f'<p class="muted">{crawled["domains_not_shown"]:,} more domain(s) not shown.</p>' if crawled["domains_not_shown"] else "",
        '<h2 id="left-out">What was left out, and why</h2>',
        '<div class="cards">'
        + _card("reserved by their own metadata", _n(left["reserved_by_metadata"]))
        + _card("opt-outs matched", _n(left["optouts_matched"]))
        + _card("tombstones matched", _n(left["tombstones_matched"]))
        + _card("opt-out entries kept", _n(left["optout_entries"]))
        + _card("tombstones kept", _n(sum(left["tombstones"].values())))
        + "</div>",
        bar_chart([(b["reason"], b["count"]) for b in left["blocked"]], title="requests blocked by reason"),
    ]
    for blocked in left["blocked"]:
        note = f" — {escape(blocked['note'])}" if blocked["note"] else ""
        sections.append(f'<h3 class="reason">blocked: {escape(blocked["reason"])} ({blocked["count"]:,}){note}</h3>')
        if blocked["domains"]:
            sections.append(
                _table(
                    ["domain", "count", "examples"],
                    [
                        [escape(d["domain"]), d["count"], "<br>".join(f"<code>{escape(u)}</code>" for u in d["examples"])]
                        for d in blocked["domains"]
                    ],
                    numeric={1},
                )
            )
        else:
            sections.append('<p class="muted">Counted only; no URL kept.</p>')
    sections.append("<h3>Skipped after fetching</h3>")
    sections.append(
        _table(["reason", "count"], [[escape(s["reason"]), s["count"]] for s in left["skipped"]], numeric={1})
        if left["skipped"]
        else '<p class="muted">Nothing skipped.</p>'
    )
    deadlines = removals["erasure_deadlines"]
    sections += [
        '<h2 id="removals">Removals</h2>',
        '<div class="cards">'
        + _card("requests", _n(removals["requests"]))
        + _card("rows removed", _n(removals["rows_removed"]))
        + _card("purge verified", _n(removals["purge_verified"]))
        + _card("incomplete", _n(removals["incomplete"]))
        + _card("erasure deadlines met", _n(deadlines["met"]))
        + _card("late", _n(deadlines["late"]))
        + _card("open", _n(deadlines["open"]))
        + "</div>",
        _table(
            ["basis", "requests", "rows removed"],
            [[escape(b["basis"]), b["requests"], b["rows_removed"]] for b in removals["by_basis"]],
            numeric={1, 2},
        )
        if removals["by_basis"]
        else '<p class="muted">No removal requests.</p>',
        '<h2 id="faces">Faces</h2>',
        f"<p><span class=\"big\">{faces['images_with_faces_pixelated']:,}</span> image(s) had faces pixelated "
        f"({_pct(faces['share'])} of the gallery; {faces['faces_pixelated']:,} faces). Faces are detected only to be "
        "masked: no face crops, embeddings or unmasked face pixels are stored.</p>",
        '<h2 id="licences">Licences</h2>',
        f"<p><span class=\"big\">{_pct(licences['share'])}</span> of sightings ({licences['sightings_with_licence']:,}) "
        "name a licence URL.</p>",
        bar_chart([(entry["url"], entry["sightings"]) for entry in licences["top"]], title="top licence URLs"),
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Rights report: {escape(data['gallery'])}</title><style>{CSS}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )
