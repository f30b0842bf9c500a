"""The two ways a removal stops."""


class RequestError(ValueError):
    """A request that cannot be processed as given; nothing has been written."""


class PurgeFailed(RuntimeError):
    """The purge ran but removed data is still in a file of the gallery."""
