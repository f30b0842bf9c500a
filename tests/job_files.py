"""Writing crawl job files (TOML) for tests."""

import json


def write_job(path, **values) -> str:
    lines, politeness = [], values.pop("politeness", {})
    for key, value in values.items():
        lines.append(f"{key} = {json.dumps(value)}")
    if politeness:
        lines.append("[politeness]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in politeness.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def frontier_job(folder, site_url: str, frontier: str, **politeness) -> str:
    """A job in `folder` that crawls a loopback site, unrendered, through `frontier` into
    folder/gallery (a relative gallery is the job file's folder)."""
    return write_job(
        folder / "job.toml",
        seeds=[site_url + "/"],
        allow_loopback=True,
        gallery="gallery",
        frontier=frontier,
        render="never",
        politeness=politeness,
    )
