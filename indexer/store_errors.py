"""What the gallery's store raises when it refuses or fails a request, and the one line an
operator reads about it."""

import re

from botocore.exceptions import BotoCoreError, ClientError

# What a store that refuses or fails a request raises: LanceDB wraps object-store errors in
# RuntimeError, pylance in OSError; the purge lock's own S3 requests raise botocore's errors.
STORE_ERRORS = (OSError, RuntimeError, BotoCoreError, ClientError)


class StoreError(Exception):
    """The gallery's store could not be opened, read or written; the message is one line."""


_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")
_S3_MESSAGE = re.compile(r"<Message>([^<]+)</Message>")
_HTTP_STATUS = re.compile(r"status(?: code)?: (\d{3})\b")


def describe_store_error(exc: Exception) -> str:
    """One line for an operator: the store's error code, message and HTTP status when it sent
    them (S3 error documents), else the first line of the error."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code"), error.get("Message")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    else:
        code, message, status = (_first_match(pattern, str(exc)) for pattern in (_S3_CODE, _S3_MESSAGE, _HTTP_STATUS))
    if code:
        return f"{code}" + (f": {message}" if message else "") + (f" (HTTP {status})" if status else "")
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def _first_match(pattern: re.Pattern, text: str) -> str | None:
    found = pattern.search(text)
    return found.group(1) if found else None
