"""The purge lock: ingest holds it shared around each append, a purge exclusive, so cleanup
never deletes the files of an append in flight, and no append lands between a removal's last
look and its purge. A local gallery locks a file (flock); an S3 gallery, objects written with
S3 conditional requests."""

import fcntl
import logging
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

LOCK_NAME = ".purge.lock"
# A lock object not renewed for this long belongs to a process that died holding it.
LEASE_SECONDS = 120
RENEW_SECONDS = 10
POLL_SECONDS = 0.25


class PurgeLock:
    """flock on a file in a local gallery directory (released by the kernel when a holder
    dies), or lease objects under an s3:// gallery (a dead holder's lease expires). Other
    object stores have no lock: there `enforced` is False and the purge keeps files no
    manifest references yet."""

    def __init__(self, uri: str):
        if "://" not in uri or uri.startswith("file://"):
            self._lock = _FileLock(Path(uri.removeprefix("file://")) / LOCK_NAME)
        elif uri.startswith(("s3://", "s3a://")):
            bucket, _, prefix = uri.split("://", 1)[1].partition("/")
            self._lock = _ObjectLock(bucket, "/".join(filter(None, (prefix.strip("/"), LOCK_NAME))))
        else:
            self._lock = None

    @property
    def enforced(self) -> bool:
        return self._lock is not None

    @contextmanager
    def shared(self):
        if self._lock is None:
            yield
        else:
            with self._lock.shared():
                yield

    @contextmanager
    def exclusive(self):
        if self._lock is None:
            yield
        else:
            with self._lock.exclusive():
                yield


class _FileLock:
    def __init__(self, path: Path):
        self.path = path

    def shared(self):
        return self._held(fcntl.LOCK_SH)

    def exclusive(self):
        return self._held(fcntl.LOCK_EX)

    @contextmanager
    def _held(self, mode: int):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, mode)  # blocks: ingest pauses while a purge runs, then goes on
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class _ObjectLock:
    """A readers-writer lock made of objects under `root`: one `exclusive` object, created with
    If-None-Match so only one purge holds it, and one `shared-<id>` object per append.

    Each side writes its own object first and then looks for the other's; S3 reads and lists
    are strongly consistent, so at least one of them sees the other and waits. Holders renew
    their object; one older than LEASE_SECONDS (by the store's clock) is a dead holder's.
    """

    def __init__(self, bucket: str, root: str):
        self.bucket = bucket
        self.exclusive_key = f"{root}/exclusive"
        self.shared_prefix = f"{root}/shared-"
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import boto3  # endpoint, region and credentials: the same AWS variables LanceDB reads

            self._client = boto3.client("s3")
        return self._client

    @contextmanager
    def shared(self):
        key = f"{self.shared_prefix}{uuid.uuid4().hex}"
        waited = False
        while True:
            self._put(key)
            if not self._live_exclusive():
                break
            self.client.delete_object(Bucket=self.bucket, Key=key)  # let the purge through
            if not waited:
                logger.info("waiting for a purge of the gallery to finish (s3://%s/%s)", self.bucket, self.exclusive_key)
                waited = True
            time.sleep(POLL_SECONDS)
        with self._renewed(key):
            yield

    @contextmanager
    def exclusive(self):
        waited = False
        while not self._put(self.exclusive_key, if_none_match=True):
            if not waited:
                logger.warning(
                    "waiting for the purge lock s3://%s/%s: another removal holds it, or one that stopped "
                    "left it (then it ends within %d s)", self.bucket, self.exclusive_key, LEASE_SECONDS,
                )  # fmt: skip
                waited = True
            time.sleep(POLL_SECONDS)  # another purge holds it (or held it and died: see _live_exclusive)
            self._live_exclusive()
        with self._renewed(self.exclusive_key):
            while self._live_shared():
                time.sleep(POLL_SECONDS)  # appends in flight finish; new ones wait for us
            yield

    def _put(self, key: str, *, if_none_match: bool = False) -> bool:
        extra = {"IfNoneMatch": "*"} if if_none_match else {}
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"", **extra)
        except ClientError as exc:
            # 409: a concurrent conditional write to the same key is in progress.
            if exc.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def _live_exclusive(self) -> bool:
        """Whether a live purge holds the lock; a dead one's object is removed."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.exclusive_key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        if not _expired(head["LastModified"], head):
            return True
        self._delete_expired(self.exclusive_key, head["ETag"])
        return False

    def _live_shared(self) -> bool:
        listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.shared_prefix)
        live = False
        for entry in listing.get("Contents", []):
            if _expired(entry["LastModified"], listing):
                self._delete_expired(entry["Key"], entry["ETag"])
            else:
                live = True
        return live

    def _delete_expired(self, key: str, etag: str) -> None:
        logger.warning("removing an expired purge lock object s3://%s/%s (its holder died)", self.bucket, key)
        try:  # only that version: not a lease its holder renewed, or a new holder wrote, since
            self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=etag)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("PreconditionFailed", "404", "NoSuchKey"):
                raise

    @contextmanager
    def _renewed(self, key: str):
        stop = threading.Event()

        def renew():
            while not stop.wait(RENEW_SECONDS):
                try:
                    self._put(key)
                except (BotoCoreError, ClientError) as exc:  # tried again next round; the lease outlives a few
                    logger.warning("could not renew the purge lock s3://%s/%s: %s", self.bucket, key, exc)

        renewer = threading.Thread(target=renew, name="purge-lock-renewal", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key)
            except (BotoCoreError, ClientError) as exc:
                # Not raised: it would hide why the work under the lock failed. The lease expires.
                logger.warning("could not release the purge lock s3://%s/%s: %s", self.bucket, key, exc)


def _expired(last_modified: datetime, response: dict) -> bool:
    # Measured on the store's clock (its Date header): the machines' clocks may disagree.
    now = parsedate_to_datetime(response["ResponseMetadata"]["HTTPHeaders"]["date"])
    return (now - last_modified).total_seconds() > LEASE_SECONDS
