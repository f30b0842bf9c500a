"""The purge lock on a local directory (flock) and on S3 (lease objects, against moto's server)."""

import threading
import time
import uuid

import boto3
import pytest

from indexer import purge_lock
from indexer.purge_lock import PurgeLock


@pytest.fixture(params=["local", "s3"])
def uri(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "gallery")
    request.getfixturevalue("s3")
    return f"s3://galleries/{uuid.uuid4().hex}"


def _in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target)
    thread.start()
    return thread


def test_ingest_waits_for_a_purge(uri):
    lock, events = PurgeLock(uri), []

    def ingest():
        with PurgeLock(uri).shared():  # another process's handle
            events.append("append")

    with lock.exclusive():
        worker = _in_thread(ingest)
        time.sleep(0.6)
        events.append("purge done")
    worker.join(10)
    assert events == ["purge done", "append"]


def test_purge_waits_for_appends_in_flight(uri):
    events, appending = [], threading.Event()

    def ingest():
        with PurgeLock(uri).shared():
            appending.set()
            time.sleep(0.6)
            events.append("append done")

    worker = _in_thread(ingest)
    assert appending.wait(10)
    with PurgeLock(uri).exclusive():
        events.append("purge")
    worker.join(10)
    assert events == ["append done", "purge"]
    with PurgeLock(uri).shared(), PurgeLock(uri).shared():  # appends do not wait for each other
        pass


def test_lock_of_a_dead_holder_expires(s3, monkeypatch):
    monkeypatch.setattr(purge_lock, "LEASE_SECONDS", 1)
    prefix = uuid.uuid4().hex
    client = boto3.client("s3")
    # What a purge and an append killed while holding the lock leave behind.
    client.put_object(Bucket="galleries", Key=f"{prefix}/.purge.lock/exclusive", Body=b"")
    client.put_object(Bucket="galleries", Key=f"{prefix}/.purge.lock/shared-dead", Body=b"")
    time.sleep(2.5)  # object times have a resolution of one second
    lock = PurgeLock(f"s3://galleries/{prefix}")
    with lock.shared():
        pass
    with lock.exclusive():
        pass
    assert client.list_objects_v2(Bucket="galleries", Prefix=prefix)["KeyCount"] == 0


def test_other_object_stores_are_not_locked():
    assert PurgeLock("s3://bucket/gallery").enforced
    assert not PurgeLock("gs://bucket/gallery").enforced


def test_a_held_lock_is_renewed_so_it_never_expires(s3, monkeypatch):
    monkeypatch.setattr(purge_lock, "LEASE_SECONDS", 2)
    monkeypatch.setattr(purge_lock, "RENEW_SECONDS", 0.3)
    uri, events = f"s3://galleries/{uuid.uuid4().hex}", []

    def ingest():
        with PurgeLock(uri).shared():
            events.append("append")

    with PurgeLock(uri).exclusive():
        worker = _in_thread(ingest)
        time.sleep(4.5)  # more than twice the lease: only renewal keeps the append waiting
        events.append("purge done")
    worker.join(10)
    assert events == ["purge done", "append"]
