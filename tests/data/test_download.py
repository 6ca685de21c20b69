"""fetch(): verified, resumable downloads, tested against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
import warnings

import pytest

from causalxai.data import download
from causalxai.data.download import (
    ChecksumError,
    DownloadError,
    MissingDownloadError,
    UnverifiedDownloadWarning,
    fetch,
    file_digest,
    require_downloaded,
)

PAYLOAD = bytes(range(256)) * 2000 + b"tail"  # 512,004 bytes: several read chunks


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-`` unless ``server.ranges`` is off.

    ``server.cut[path] = n`` makes the next answer for ``path`` announce the full
    Content-Length but send only ``n`` bytes and close the connection.
    """

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        srv = self.server
        with srv.lock:
            srv.requests.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and srv.ranges:
            m = re.fullmatch(r"bytes=(\d+)-", rng.strip())
            assert m, rng
            start = int(m[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        with srv.lock:
            cut = srv.cut.pop(self.path, None)
        if cut is None:
            self.wfile.write(body)
        else:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.files, srv.cut, srv.requests, srv.ranges, srv.lock = {}, {}, [], True, threading.Lock()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    srv.hits = lambda path: sum(1 for p, _ in srv.requests if p == path)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr(download, "BACKOFF_S", 0.0)


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_file_digest(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(PAYLOAD)
    assert file_digest(p) == _sha(PAYLOAD)
    assert file_digest(str(p), "md5") == _md5(PAYLOAD)


def test_plain_download_verified_by_md5_and_sha256(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "sub" / "a.bin"
    out = fetch(server.url + "/a.bin", dest, md5=_md5(PAYLOAD), sha256=_sha(PAYLOAD).upper(), progress=False)
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "a.bin.part").exists()
    assert not (tmp_path / "sub" / "a.bin.sha256").exists()
    out2 = fetch(server.url + "/a.bin", tmp_path / "b.bin", md5=_md5(PAYLOAD), progress=True, timeout=5)
    assert out2.read_bytes() == PAYLOAD


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    with pytest.raises(ChecksumError) as info:
        fetch(server.url + "/a.bin", dest, md5="0" * 32, progress=False)
    msg = str(info.value)
    assert "/a.bin" in msg and str(dest) in msg and "0" * 32 in msg and _md5(PAYLOAD) in msg
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ChecksumError, match=_sha(PAYLOAD)):
        fetch(server.url + "/a.bin", dest, sha256="f" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cut_connection_is_resumed_with_a_range_request(server, tmp_path):
    server.files["/big.bin"] = PAYLOAD
    server.cut["/big.bin"] = 100_000
    dest = tmp_path / "big.bin"
    fetch(server.url + "/big.bin", dest, sha256=_sha(PAYLOAD), progress=False, timeout=5)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/big.bin", None), ("/big.bin", "bytes=100000-")]
    assert not (tmp_path / "big.bin.part").exists()


def test_existing_part_is_resumed_and_restarted_when_server_ignores_ranges(server, tmp_path):
    server.files["/x.bin"] = PAYLOAD
    dest = tmp_path / "x.bin"
    (tmp_path / "x.bin.part").write_bytes(PAYLOAD[:12345])
    fetch(server.url + "/x.bin", dest, md5=_md5(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/x.bin", "bytes=12345-")

    # a server without Range support answers 200: the .part is overwritten, not appended to
    server.ranges = False
    dest2 = tmp_path / "y.bin"
    (tmp_path / "y.bin.part").write_bytes(b"garbage" * 100)
    fetch(server.url + "/x.bin", dest2, md5=_md5(PAYLOAD), progress=False)
    assert dest2.read_bytes() == PAYLOAD


def test_complete_part_gets_416_and_is_kept(server, tmp_path):
    server.files["/x.bin"] = PAYLOAD
    (tmp_path / "x.bin.part").write_bytes(PAYLOAD)
    out = fetch(server.url + "/x.bin", tmp_path / "x.bin", md5=_md5(PAYLOAD), progress=False)
    assert out.read_bytes() == PAYLOAD
    assert server.requests == [("/x.bin", f"bytes={len(PAYLOAD)}-")]


def test_mirror_list_falls_through_404(server, tmp_path):
    server.files["/good/a.bin"] = PAYLOAD
    urls = [server.url + "/missing/a.bin", f"http://127.0.0.1:{_closed_port()}/a.bin", server.url + "/good/a.bin"]
    out = fetch(urls, tmp_path / "a.bin", md5=_md5(PAYLOAD), progress=False, retries=1, timeout=5)
    assert out.read_bytes() == PAYLOAD
    assert server.hits("/missing/a.bin") == 1  # a 404 is not retried
    assert server.hits("/good/a.bin") == 1


def test_404_everywhere_raises_download_error(server, tmp_path):
    urls = [server.url + "/nope1.bin", server.url + "/nope2.bin"]
    dest = tmp_path / "n.bin"
    with pytest.raises(DownloadError) as info:
        fetch(urls, dest, md5="0" * 32, progress=False)
    assert not isinstance(info.value, ChecksumError)
    msg = str(info.value)
    assert urls[0] in msg and urls[1] in msg and "404" in msg and str(dest) in msg and "by hand" in msg
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_is_retried_then_fails(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/a.bin"
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="network") as info:
        fetch(url, dest, retries=2, timeout=2, progress=False)
    assert url in str(info.value) and "2 retries" in str(info.value)
    assert not dest.exists()


def test_existing_valid_dest_is_not_downloaded_again(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    fetch(server.url + "/a.bin", dest, md5=_md5(PAYLOAD), progress=False)
    fetch(server.url + "/a.bin", dest, md5=_md5(PAYLOAD), progress=False)
    fetch(server.url + "/a.bin", dest, progress=False)  # no checksum: an existing file is trusted
    assert server.hits("/a.bin") == 1


def test_existing_corrupt_dest_raises(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    dest.write_bytes(PAYLOAD[:-1])
    with pytest.raises(ChecksumError) as info:
        fetch(server.url + "/a.bin", dest, md5=_md5(PAYLOAD), progress=False)
    msg = str(info.value)
    assert str(dest) in msg and _md5(PAYLOAD) in msg and _md5(PAYLOAD[:-1]) in msg and "delete" in msg
    assert server.hits("/a.bin") == 0
    assert dest.read_bytes() == PAYLOAD[:-1]  # left for the user to inspect


def test_file_urls(tmp_path):
    src = tmp_path / "src dir" / "a.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "a.bin"
    out = fetch(src.as_uri(), dest, md5=_md5(PAYLOAD), progress=False)
    assert out.read_bytes() == PAYLOAD
    missing = (tmp_path / "nope.bin").as_uri()
    with pytest.raises(DownloadError, match="nope.bin"):
        fetch(missing, tmp_path / "n.bin", progress=False)
    # a missing local mirror falls through to the next one
    out = fetch([missing, src.as_uri()], tmp_path / "m.bin", sha256=_sha(PAYLOAD), progress=False)
    assert out.read_bytes() == PAYLOAD


def test_no_checksum_warns_and_writes_sidecar(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fetch(server.url + "/a.bin", dest, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert (tmp_path / "a.bin.sha256").read_text() == f"{_sha(PAYLOAD)}  a.bin\n"
    msgs = [str(w.message) for w in caught if issubclass(w.category, UnverifiedDownloadWarning)]
    assert len(msgs) == 1 and "could not be verified" in msgs[0] and _sha(PAYLOAD) in msgs[0] and "sha256=" in msgs[0]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="no URL"):
        fetch([], tmp_path / "a")
    with pytest.raises(ValueError, match="ftp://"):
        fetch("ftp://127.0.0.1/a", tmp_path / "a")


def test_require_downloaded_names_the_file_and_how_to_download_it(tmp_path):
    here = tmp_path / "here.bin"
    here.write_bytes(b"x")
    assert require_downloaded(str(here), "fetch") == here
    for missing in (tmp_path / "absent.bin", tmp_path):  # a folder is not the file either
        with pytest.raises(MissingDownloadError) as info:
            require_downloaded(missing, "rule download_zoo")
        assert str(missing) in str(info.value) and "rule download_zoo" in str(info.value)
        assert isinstance(info.value, FileNotFoundError)
