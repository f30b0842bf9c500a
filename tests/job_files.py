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
