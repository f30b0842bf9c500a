"""Our own signal: every policy block is sent here, so counting and logging live in one place."""

from scrapy.exceptions import IgnoreRequest

policy_blocked = object()  # sent with url=, reason=, page_url=
TOMBSTONE = "tombstone"  # the reason for what a removal took out: counted, never logged by URL


def report_block(crawler, *, url: str, reason: str, page_url: str | None = None) -> None:
    crawler.signals.send_catch_log(policy_blocked, url=url, reason=reason, page_url=page_url)


class Blocked(IgnoreRequest):
    """A request the policy refused (already reported): its reason, and what lay under it where
    known (why robots.txt was unreachable), for an errback that must say why."""

    def __init__(self, url: str, reason: str, detail: str | None = None):
        super().__init__(f"blocked ({reason}): {url}")
        self.reason = reason
        self.detail = detail
