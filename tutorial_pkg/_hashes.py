"""SHA-256 sums of the shipped files: one ``SHA256SUMS`` file per folder, in the format of ``sha256sum``.

The weights of :mod:`tutorial_pkg.zoo` and the molecular data of :mod:`tutorial_pkg.systems` are checked
against these sums before they are opened, so that a changed, truncated or corrupted file is refused.
"""

from __future__ import annotations

import hashlib
import pathlib

SUMS = "SHA256SUMS"


def sha256(path: pathlib.Path) -> str:
    """The SHA-256 of a file, as hex."""
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def read_sums(folder: pathlib.Path) -> dict[str, str]:
    """The recorded sums of a folder, file name -> hex digest; empty when there is no ``SHA256SUMS``."""
    sums = pathlib.Path(folder) / SUMS
    if not sums.exists():
        return {}
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, filename = line.split()
            out[filename.lstrip("*")] = digest
    return out


def write_sum(folder: pathlib.Path, filename: str, digest: str) -> None:
    """Record (or replace) the sum of one file in the folder's ``SHA256SUMS``, keeping the others."""
    sums = read_sums(folder)
    sums[filename] = digest
    (pathlib.Path(folder) / SUMS).write_text("".join(f"{d}  {f}\n" for f, d in sorted(sums.items())))


def check(path: pathlib.Path, *, kind: str, remedy: str, remedy_if_changed: str | None = None) -> pathlib.Path:
    """Return ``path`` if the file exists and matches its recorded SHA-256; raise ``ValueError`` otherwise.

    ``kind`` names the file in the message ("the weights file"); ``remedy`` says how to make a missing file,
    ``remedy_if_changed`` (default: ``remedy``) what to do about a file that does not match its sum.
    """
    path = pathlib.Path(path)
    expected = read_sums(path.parent).get(path.name)
    if expected is None:
        raise ValueError(f"no SHA-256 is recorded for {path.name}; {remedy}")
    if not path.exists():
        raise ValueError(f"{kind} {path.name} is missing; {remedy}")
    actual = sha256(path)
    if actual != expected:
        raise ValueError(f"{kind} {path.name} does not match its recorded SHA-256 (expected {expected[:12]}..., "
                         f"got {actual[:12]}...): it was changed, truncated or corrupted. Refusing to load it; "
                         f"{remedy_if_changed or remedy}")
    return path
