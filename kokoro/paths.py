"""Where the project keeps what it can rebuild: one cache folder for every package."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$KOKORO_CACHE, default ~/.cache/kokoro-line."""
    return Path(os.environ.get("KOKORO_CACHE", "~/.cache/kokoro-line")).expanduser()
