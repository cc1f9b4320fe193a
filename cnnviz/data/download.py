"""Fetch a dataset archive where the network allows, failing fast where it does not."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

TIMEOUT = 10.0  # seconds to connect / between bytes: a closed network fails in well under a second


def offline() -> bool:
    """True when ``CNNVIZ_OFFLINE`` asks never to touch the network."""
    return os.environ.get("CNNVIZ_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def fetch(url: str, dest: Path, *, md5: str | None = None, timeout: float = TIMEOUT) -> Path:
    """Download ``url`` to ``dest`` (temp file + replace, MD5 checked when given); OSError on any failure."""
    if offline():
        raise OSError("downloads are switched off (CNNVIZ_OFFLINE)")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            while block := response.read(1 << 20):
                digest.update(block)
                out.write(block)
        if md5 and digest.hexdigest() != md5:
            raise OSError(f"{dest.name} downloaded but its MD5 does not match (a broken download)")
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return dest

