"""Verified, resumable downloads (``http(s)://`` and ``file://``) with the standard library.

:func:`fetch` downloads one file from a list of mirrors into ``<dest>.part``, resumes an
interrupted download with an HTTP ``Range`` request, retries connection errors and short
reads with exponential backoff, verifies the MD5 and/or SHA-256 digest and only then moves
the file atomically (:func:`os.replace`) to ``dest``. ``dest`` therefore only ever exists
complete and verified; a failed download leaves at most ``<dest>.part`` behind, which the
next call resumes (a ``.part`` with the wrong digest is deleted).

A file fetched without an expected digest cannot be verified: :func:`fetch` warns
(:class:`UnverifiedDownloadWarning`) and records the SHA-256 it saw in ``<dest>.sha256``
(``sha256sum`` format) so it can be pinned.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

from causalxai.progress import Progress

_LOG = logging.getLogger(__name__)

__all__ = [
    "DownloadError",
    "ChecksumError",
    "MissingDownloadError",
    "UnverifiedDownloadWarning",
    "file_digest",
    "fetch",
    "require_downloaded",
    "unsafe_tar_member",
    "verify",
]

#: First wait between two attempts at one URL in seconds (doubled after each failure,
#: capped at :data:`BACKOFF_MAX_S`). Tests set it to 0.
BACKOFF_S: float = 1.0
BACKOFF_MAX_S: float = 30.0
CHUNK_SIZE: int = 1 << 20
USER_AGENT: str = "causal-xai/0.1 (+urllib)"

# HTTP statuses worth another try at the same URL; every other error status is final.
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class DownloadError(RuntimeError):
    """A file could not be downloaded (no mirror answered with it)."""


class ChecksumError(DownloadError):
    """A file's digest is not the expected one."""


class MissingDownloadError(FileNotFoundError):
    """A file that should have been downloaded already is not there (a reader that never downloads)."""


def require_downloaded(path: str | os.PathLike, how: str) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is a file, else :class:`MissingDownloadError`.

    Args:
        path: a file a download step writes.
        how: how to download it (a function, a workflow rule), for the message.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDownloadError(
            f"{path} is missing: it is not downloaded here (this step reads local files only); "
            f"download it first with {how}"
        )
    return path


class UnverifiedDownloadWarning(UserWarning):
    """A file was downloaded without an expected digest to check it against."""


class _FinalError(Exception):
    """This URL will not work (404, missing local file, ...): go to the next mirror."""


class _RetryableError(Exception):
    """A transient failure (connection dropped, short read, 503, ...): try again."""


class _LocalError(Exception):
    """Writing the downloaded bytes to disk failed: retrying or other mirrors won't help."""


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks.

    Args:
        path: the file.
        algorithm: any :func:`hashlib.new` name (``"sha256"``, ``"md5"``, ...).

    Returns:
        the lower-case hex digest.
    """
    return _digests(Path(path), (algorithm,))[algorithm]


def _digests(path: Path, algorithms: Sequence[str]) -> dict[str, str]:
    """Several digests of one file in a single pass."""
    hashes = {a: hashlib.new(a, usedforsecurity=False) for a in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            for h in hashes.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashes.items()}


def _mismatches(path: Path, expected: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """``{algorithm: (expected, actual)}`` for each digest of ``path`` that does not match."""
    actual = _digests(path, tuple(expected))
    return {a: (expected[a], actual[a]) for a in expected if actual[a] != expected[a]}


def _describe(mismatches: Mapping[str, tuple[str, str]]) -> str:
    return "; ".join(f"{a} expected {e}, got {g}" for a, (e, g) in mismatches.items())


def verify(
    path: str | os.PathLike,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    known: Mapping[str, str] | None = None,
) -> Path:
    """``path`` if its digests are the expected ones, else :class:`ChecksumError` naming the
    file, both digests and the fix (delete it to download it again).

    Args:
        path: a downloaded file.
        md5, sha256: the expected digests (None: not checked).
        known: digests of ``path`` already computed (e.g. while extracting it), used instead of
            reading the file again.
    """
    path = Path(path)
    expected = {a: v.strip().lower() for a, v in (("md5", md5), ("sha256", sha256)) if v}
    actual = dict(known or {})
    missing = [a for a in expected if a not in actual]
    if missing:
        actual.update(_digests(path, missing))
    bad = {a: (expected[a], str(actual[a]).strip().lower()) for a in expected
           if str(actual[a]).strip().lower() != expected[a]}
    if bad:
        raise ChecksumError(
            f"{path} is not the expected file ({_describe(bad)}). It is probably corrupt or an incomplete copy: "
            f"delete it (`rm {path}`) to download it again."
        )
    return path


def _scheme(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower()


def _open(url: str, offset: int, timeout: float):
    """Open ``url`` (asking for the bytes from ``offset`` on for HTTP); map errors."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset and _scheme(url) in ("http", "https"):
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (scheme checked by fetch)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416:
            raise  # handled by the caller (range beyond the end)
        kind = _RetryableError if exc.code in _RETRY_STATUS else _FinalError
        raise kind(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        if _scheme(url) == "file":
            raise _FinalError(f"cannot read the local file ({exc.reason})") from exc
        raise _RetryableError(f"cannot connect ({exc.reason})") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _RetryableError(f"{type(exc).__name__}: {exc}") from exc


def _content_range_start(value: str | None) -> int | None:
    """Start offset of a ``Content-Range: bytes START-END/TOTAL`` header."""
    if not value or not value.strip().lower().startswith("bytes "):
        return None
    try:
        return int(value.strip()[6:].split("-", 1)[0])
    except ValueError:
        return None


def _range_total(value: str | None) -> int | None:
    """Total size of a ``Content-Range: bytes */TOTAL`` (or ``START-END/TOTAL``) header."""
    if not value or "/" not in value:
        return None
    try:
        return int(value.rsplit("/", 1)[1])
    except ValueError:
        return None


def _download_once(url: str, part: Path, timeout: float, progress: bool, label: str) -> None:
    """One attempt to complete ``part`` from ``url``; raises on a failure or short read."""
    offset = part.stat().st_size if part.exists() else 0
    if _scheme(url) != "http" and _scheme(url) != "https":
        offset = 0  # no ranges for file:// (local copies are fast anyway)
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as exc:  # 416: the range starts at or beyond the end
        total = _range_total(exc.headers.get("Content-Range") if exc.headers else None)
        if total is not None and total == offset:
            return  # the .part is already complete
        part.unlink(missing_ok=True)  # longer than the file, or unknown: start over
        raise _RetryableError(f"HTTP 416 for bytes={offset}- (the partial file was discarded)") from exc

    with response:
        status = getattr(response, "status", None) or 200
        append = False
        if offset and status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _RetryableError(
                    f"server answered bytes={offset}- with Content-Range "
                    f"{response.headers.get('Content-Range')!r} (the partial file was discarded)"
                )
            append = True
        elif status not in (200, 206):
            raise _FinalError(f"unexpected HTTP status {status}")
        have = offset if append else 0
        length = response.headers.get("Content-Length")
        try:
            expected_total = have + int(length) if length is not None else None
        except ValueError:
            expected_total = None

        bar = Progress(expected_total or 0, f"download {label}", "bytes", _LOG, enabled=progress)
        if have:
            bar.update(have, note="resumed")
        try:
            out = open(part, "ab" if append else "wb")
        except OSError as exc:
            raise _LocalError(f"cannot write {part} ({exc})") from exc
        with out:
            while True:
                try:
                    chunk = response.read(CHUNK_SIZE)
                except (OSError, http.client.HTTPException) as exc:
                    raise _RetryableError(
                        f"connection lost after {have} bytes ({type(exc).__name__}: {exc})"
                    ) from exc
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise _LocalError(f"cannot write {part} ({exc})") from exc
                have += len(chunk)
                bar.update(len(chunk))
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                raise _LocalError(f"cannot write {part} ({exc})") from exc
        if expected_total is not None and have != expected_total:
            raise _RetryableError(f"incomplete download: got {have} of {expected_total} bytes")


def _download(url: str, part: Path, timeout: float, retries: int, progress: bool, label: str) -> None:
    """Complete ``part`` from ``url``, retrying transient failures with backoff.

    An attempt that got further than every earlier one does not count as a failure, so a
    flaky connection that keeps making progress is never given up on.
    """
    failures = 0
    best = part.stat().st_size if part.exists() else 0
    while True:
        try:
            _download_once(url, part, timeout, progress, label)
            return
        except _RetryableError as exc:
            size = part.stat().st_size if part.exists() else 0
            if size > best:
                best = size
            else:
                failures += 1
            if failures > retries:
                raise _RetryableError(f"{exc} (gave up after {retries} retries)") from exc
            time.sleep(min(BACKOFF_S * 2 ** max(failures - 1, 0), BACKOFF_MAX_S))


def fetch(
    url: str | Sequence[str],
    dest: str | os.PathLike,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest``: resumable, retried, verified, atomic.

    Args:
        url: one URL or mirrors tried in order (``http://``, ``https://`` or ``file://``).
        dest: where the file goes; its folder is created.
        md5: expected MD5 (hex) of the file, if known.
        sha256: expected SHA-256 (hex) of the file, if known.
        timeout: seconds to wait for a connection or for data.
        retries: how many more times one URL is tried after a connection error or short
            read before the next mirror is tried (waiting :data:`BACKOFF_S`, doubled each
            time).
        progress: log the bytes received at a steady rate (:class:`causalxai.progress.Progress`).

    Returns:
        ``dest`` as a :class:`~pathlib.Path`. An existing ``dest`` whose digests match is
        returned without downloading (without digests an existing ``dest`` is trusted).

    Raises:
        ChecksumError: an existing ``dest`` does not match (delete it to download it again),
            or no mirror served a file with the expected digests (nothing is kept).
        DownloadError: no mirror could be downloaded from; ``<dest>.part`` is kept so the
            next call resumes.
        ValueError: no URL, or a URL scheme other than http, https or file.
    """
    urls = [url] if isinstance(url, (str, bytes)) else list(url)
    urls = [u.decode() if isinstance(u, bytes) else str(u) for u in urls]
    if not urls:
        raise ValueError(f"fetch({dest!s}): no URL given")
    for u in urls:
        if _scheme(u) not in ("http", "https", "file"):
            raise ValueError(f"fetch({dest!s}): unsupported URL {u!r} (use http://, https:// or file://)")
    dest = Path(dest)
    expected = {a: v.strip().lower() for a, v in (("md5", md5), ("sha256", sha256)) if v}

    if dest.exists():
        return verify(dest, md5=md5, sha256=sha256)

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures: list[str] = []
    bad_files: list[str] = []
    for u in urls:
        try:
            _download(u, part, timeout, retries, progress, dest.name)
        except _LocalError as exc:
            raise DownloadError(
                f"downloading {u} to {dest} failed: {exc}. Free some space or fix the permissions and retry."
            ) from exc
        except (_RetryableError, _FinalError) as exc:
            failures.append(f"{u}: {exc}")
            continue
        if expected:
            bad = _mismatches(part, expected)
            if bad:
                part.unlink(missing_ok=True)
                bad_files.append(f"{u}: {_describe(bad)}")
                continue
            os.replace(part, dest)
            return dest
        digest = file_digest(part, "sha256")
        os.replace(part, dest)
        sidecar = dest.with_name(dest.name + ".sha256")
        tmp = sidecar.with_name(sidecar.name + ".tmp")
        tmp.write_text(f"{digest}  {dest.name}\n")
        os.replace(tmp, sidecar)
        warnings.warn(
            f"{dest} was downloaded from {u} but could not be verified (no md5 or sha256 given). "
            f"Its SHA-256 is {digest} (recorded in {sidecar}); pin it by passing sha256={digest!r} "
            f"(or setting it in the config) so later downloads are checked.",
            UnverifiedDownloadWarning,
            stacklevel=2,
        )
        return dest

    tried = "\n".join(f"  - {line}" for line in bad_files + failures)
    if bad_files:
        raise ChecksumError(
            f"no mirror served the expected file for {dest} (nothing was kept):\n{tried}\n"
            f"The file on the server may have changed, or a proxy altered it. Check the URL and "
            f"the expected digest, or place a correct copy at {dest} by hand."
        )
    resume = f" The partial download {part} is kept and resumed next time." if part.exists() else ""
    raise DownloadError(
        f"could not download {dest.name} to {dest}; tried:\n{tried}\n"
        f"Check the network connection (and proxy settings) and run again, or download the file "
        f"by hand and place it at {dest}.{resume}"
    )


def unsafe_tar_member(member: tarfile.TarInfo) -> str | None:
    """Why extracting ``member`` of a downloaded archive would be unsafe, or ``None``.

    Refused: absolute paths (POSIX or Windows), ``..`` components (path traversal),
    symbolic and hard links, devices, FIFOs and any other non-regular entry.
    """
    name = member.name
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        return "has an absolute path"
    if ".." in posix.parts or ".." in windows.parts:
        return "leaves the extraction folder ('..')"
    if member.issym() or member.islnk():
        return f"is a {'symbolic' if member.issym() else 'hard'} link to {member.linkname!r}"
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        return "is a device or FIFO"
    if not (member.isfile() or member.isdir()):
        return f"has the unsupported tar type {member.type!r}"
    return None
