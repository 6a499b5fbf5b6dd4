"""gs:// storage through the GCS emulator's JSON API: a missing bucket is named as such, with the fix."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fixtures.access import GcsEmulatorStorage
from fixtures.errors import StorageError
from fixtures.portforward import Endpoint


class Emulator(BaseHTTPRequestHandler):
    """Answers as fake-gcs-server does: 404 without a body for a missing bucket, 200 for bucket "present"."""

    def _answer(self, code: int, body: bytes = b"") -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/storage/v1/b/present":
            self._answer(200, b'{"name": "present"}')
        elif self.path.startswith("/storage/v1/b/present/o?"):
            self._answer(200, b'{"items": [{"name": "in/a.tif"}]}')
        else:
            self._answer(404)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if "/b/present/" in self.path:
            self._answer(507, b"no space left on device")
        else:
            self._answer(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def storage() -> Iterator[GcsEmulatorStorage]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Emulator)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield GcsEmulatorStorage(Endpoint("127.0.0.1", server.server_address[1]))
    server.shutdown()
    server.server_close()


def test_a_write_to_a_missing_bucket_names_the_bucket_and_the_fix(storage: GcsEmulatorStorage) -> None:
    with pytest.raises(StorageError) as raised:
        storage.put("gs://missing/in/a.tif", b"data")
    assert str(raised.value) == (
        "POST gs://missing/in/a.tif: the GCS emulator answered 404 Not Found: bucket 'missing' of "
        "gs://missing/in/a.tif does not exist in the GCS emulator (GET storage/v1/b/missing answered 404). Fix: "
        "create it (the reference manifests' gcs-init Job creates GCS_BUCKET), or point the server's and "
        "consolidaters' storage flags at an existing bucket"
    )


def test_another_refusal_is_given_in_the_emulators_words(storage: GcsEmulatorStorage) -> None:
    with pytest.raises(StorageError, match=r"^POST gs://present/x: the GCS emulator answered 507 .*: no space left"):
        storage.put("gs://present/x", b"data")


def test_the_location_of_an_existing_bucket_has_no_problem(storage: GcsEmulatorStorage) -> None:
    assert storage.location_problem("gs://present/ingestion") is None
    assert "bucket 'missing' of gs://missing/ingestion does not exist" in str(
        storage.location_problem("gs://missing/ingestion")
    )
    assert storage.list("gs://present/in/") == ["gs://present/in/a.tif"]
