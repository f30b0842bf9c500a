"""When a removal is due."""

from datetime import datetime

from dateutil.relativedelta import relativedelta


def add_one_month(moment: datetime) -> datetime:
    """The same day of the next month, or its last day when that day does not exist (the way
    EU law counts a period in months, Regulation 1182/71 Art. 3(2)(c))."""
    return moment + relativedelta(months=1)


def erasure_deadline(basis: str, received_at: datetime) -> datetime | None:
    """GDPR Art. 12(3): act on an erasure request within one month of receipt."""
    return add_one_month(received_at) if basis == "erasure" else None
