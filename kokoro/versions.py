"""Library versions for the settings every artifact carries."""

from __future__ import annotations

import importlib.metadata as md
import platform

PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "bitsandbytes",
    "accelerate",
    "scikit-learn",
    "numpy",
    "scipy",
    "llama-cpp-python",
    "jinja2",
    "sacrebleu",
    "rouge-score",
    "fugashi",
    "unidic-lite",
)


def library_versions() -> dict:
    from . import __version__

    out = {"python": platform.python_version(), "kokoro": __version__}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out
