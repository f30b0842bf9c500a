"""Our own signal: every policy block is sent here, so counting and logging live in one place."""

policy_blocked = object()  # sent with url=, reason=, page_url=
TOMBSTONE = "tombstone"  # the reason for what a removal took out: counted, never logged by URL


def report_block(crawler, *, url: str, reason: str, page_url: str | None = None) -> None:
    crawler.signals.send_catch_log(policy_blocked, url=url, reason=reason, page_url=page_url)
