"""The test server checked by a client others wrote: the official Couchbase
Python SDK (a C++ core, written apart from the Rust SDK).

Run by scripts/check-couchbase-python against COUCHBASE_EVENT_SOURCE_CONNSTR
(default couchbase://127.0.0.1), with the user, password and bucket of
scripts/start-couchbase. Each check prints one line; the first that fails
stops the script with exit status 1 and says what was expected.
"""

import os
import sys
import time
import uuid
from datetime import timedelta

from couchbase.auth import PasswordAuthenticator
from couchbase.cluster import Cluster
from couchbase.diagnostics import ServiceType
from couchbase.exceptions import (
    AuthenticationException,
    CasMismatchException,
    CollectionNotFoundException,
    DocumentExistsException,
    DocumentNotFoundException,
    UnAmbiguousTimeoutException,
)
from couchbase.options import (
    ClusterOptions,
    ClusterTimeoutOptions,
    GetOptions,
    InsertOptions,
    ReplaceOptions,
    UpsertOptions,
    WaitUntilReadyOptions,
)
from couchbase.transcoder import RawBinaryTranscoder

CONNSTR = os.environ.get("COUCHBASE_EVENT_SOURCE_CONNSTR", "couchbase://127.0.0.1")
USER = os.environ.get("COUCHBASE_EVENT_SOURCE_USER", "event-backbone")
PASSWORD = os.environ.get("COUCHBASE_EVENT_SOURCE_PASS", "event-backbone-test")
BUCKET = os.environ.get("COUCHBASE_EVENT_SOURCE_BUCKET", "event-backbone")
RAW = RawBinaryTranscoder()


def connect(password):
    timeouts = ClusterTimeoutOptions(
        kv_timeout=timedelta(seconds=5), connect_timeout=timedelta(seconds=10)
    )
    cluster = Cluster(CONNSTR, ClusterOptions(PasswordAuthenticator(USER, password), timeout_options=timeouts))
    # KV only: the server has no management (HTTP) service, and waiting for
    # one would take the whole timeout.
    cluster.wait_until_ready(timedelta(seconds=10), WaitUntilReadyOptions(service_types=[ServiceType.KeyValue]))
    return cluster


def check(name, ok, detail=""):
    if not ok:
        print(f"FAILED {name}: {detail}")
        sys.exit(1)
    print(f"ok     {name}")


def raises(kinds, f):
    try:
        f()
    except kinds:
        return True
    except Exception as e:  # the wrong kind: say which
        print(f"       got {type(e).__name__}: {e}")
        return False
    return False


def main():
    cluster = connect(PASSWORD)
    collection = cluster.bucket(BUCKET).scope("app").collection("payloads")
    key = f"cross-check-{uuid.uuid4()}"

    collection.upsert(key, {"n": 1})
    got = collection.get(key).content_as[dict]
    check("upsert then get (JSON)", got == {"n": 1}, f"got {got!r}, expected {{'n': 1}}")

    blob = bytes(range(256))
    collection.upsert(key, blob, UpsertOptions(transcoder=RAW))
    got = collection.get(key, GetOptions(transcoder=RAW)).content_as[bytes]
    check("upsert then get (binary, 256 byte values)", got == blob, f"got {len(got)} bytes")

    check(
        "insert of an existing key is refused",
        raises(DocumentExistsException, lambda: collection.insert(key, b"x", InsertOptions(transcoder=RAW))),
    )
    cas = collection.get(key, GetOptions(transcoder=RAW)).cas
    check(
        "replace with a stale CAS is refused",
        raises(CasMismatchException, lambda: collection.replace(key, b"x", ReplaceOptions(cas=cas + 1, transcoder=RAW))),
    )
    collection.replace(key, b"y", ReplaceOptions(cas=cas, transcoder=RAW))
    got = collection.get(key, GetOptions(transcoder=RAW)).content_as[bytes]
    check("replace with the current CAS", got == b"y", f"got {got!r}")

    collection.remove(key)
    check("remove, then get is not found", raises(DocumentNotFoundException, lambda: collection.get(key)))
    check("remove of a missing key is not found", raises(DocumentNotFoundException, lambda: collection.remove(key)))

    collection.upsert(key, b"short-lived", UpsertOptions(expiry=timedelta(seconds=1), transcoder=RAW))
    got = collection.get(key, GetOptions(transcoder=RAW)).content_as[bytes]
    check("a document with a 1 s expiry is there at first", got == b"short-lived", f"got {got!r}")
    time.sleep(2.2)
    check("and gone after 2 s", raises(DocumentNotFoundException, lambda: collection.get(key)))

    other = cluster.bucket(BUCKET).scope("app").collection("personal")
    other.upsert(key, b"p", UpsertOptions(transcoder=RAW))
    check(
        "collections are apart",
        raises(DocumentNotFoundException, lambda: collection.get(key)),
    )
    # Like Couchbase Server, the server says "unknown collection"; the SDK
    # retries that (the collection may be on its way) until its timeout,
    # and names the reason.
    missing = cluster.bucket(BUCKET).scope("app").collection("no-such-collection")
    try:
        missing.get(key, GetOptions(timeout=timedelta(seconds=1)))
        refused, detail = False, "the get succeeded"
    except CollectionNotFoundException:
        refused, detail = True, ""
    except UnAmbiguousTimeoutException as e:
        refused, detail = "collection_outdated" in str(e), f"timed out for another reason: {e}"
    check("an unknown collection is refused by the server", refused, detail)
    cluster.close()

    check("a wrong password is refused", raises(AuthenticationException, lambda: connect(PASSWORD + "-wrong")))


if __name__ == "__main__":
    main()
