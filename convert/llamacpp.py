"""llama.cpp's own converter scripts, of the version the installed llama-cpp-python vendors.

The llama-cpp-python sdist carries ``vendor/llama.cpp`` (convert_hf_to_gguf.py, conversion/,
gguf-py/, convert_lora_to_gguf.py). We fetch that sdist once with pip into a cache and run the
scripts from it, so the converter always matches the runtime. ``--llama-cpp DIR`` uses a
checkout of your own instead.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from kokoro.paths import cache_dir


class ConvertError(RuntimeError):
    """A conversion step that cannot run; the message says what is missing."""


def llama_cpp_python_version() -> str:
    try:
        return md.version("llama-cpp-python")
    except md.PackageNotFoundError:
        raise ConvertError("llama-cpp-python is not installed; run ./setup.sh (it builds it from source)") from None


def converter_dir(llama_cpp: str | os.PathLike | None = None) -> Path:
    """The llama.cpp folder holding convert_hf_to_gguf.py."""
    if llama_cpp:
        d = Path(llama_cpp).expanduser()
        if not (d / "convert_hf_to_gguf.py").is_file():
            raise ConvertError(f"{d} has no convert_hf_to_gguf.py; pass the root of a llama.cpp checkout")
        return d
    version = llama_cpp_python_version()
    root = cache_dir() / "src" / f"llama_cpp_python-{version}"
    d = root / "vendor" / "llama.cpp"
    if (d / "convert_hf_to_gguf.py").is_file():
        return d
    sdist_dir = cache_dir() / "sdist"
    sdist = sdist_dir / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.is_file() and os.environ.get("KOKORO_NO_FETCH") == "1":
        raise ConvertError(
            f"llama.cpp's converter (the llama-cpp-python {version} sdist) is not in {cache_dir()}; "
            "run ./setup.sh, which fetches it, or pass --llama-cpp DIR (KOKORO_NO_FETCH=1 is set)"
        )
    if not sdist.is_file():
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                str(sdist_dir),
                f"llama-cpp-python=={version}",
            ],
            capture_output=True,
            text=True,
        )
        if r.returncode or not sdist.is_file():
            raise ConvertError(
                f"could not fetch the llama-cpp-python {version} sdist that carries llama.cpp's "
                f"converter ({r.stderr.strip()[-300:]}); pass --llama-cpp DIR (a llama.cpp checkout)"
            )
    tmp = root.with_name(root.name + ".partial")
    with tarfile.open(sdist) as tf:
        members = [
            m
            for m in tf.getmembers()
            if "/vendor/llama.cpp/" in m.name
            and (m.name.endswith(".py") or "/gguf-py/" in m.name or "/conversion/" in m.name or "/models/" in m.name)
        ]
        tf.extractall(tmp.parent / (tmp.name + "-x"), members=members, filter="data")
    (tmp.parent / (tmp.name + "-x") / f"llama_cpp_python-{version}").rename(root)
    (tmp.parent / (tmp.name + "-x")).rmdir()
    return d


def run_script(script: Path, args: list[str], llama_dir: Path) -> str:
    env = dict(
        os.environ,
        PYTHONPATH=str(llama_dir / "gguf-py") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        NO_LOCAL_GGUF="",
    )
    r = subprocess.run([sys.executable, str(script)] + args, capture_output=True, text=True, env=env)
    if r.returncode:
        tail = (r.stderr or r.stdout).strip()[-1500:]
        if "not supported" in tail or "NotImplementedError" in tail:
            raise ConvertError(f"llama.cpp's converter does not know this architecture:\n{tail}")
        raise ConvertError(f"{script.name} failed:\n{tail}")
    return r.stdout + r.stderr


if __name__ == "__main__":  # ./setup.sh: fetch the converter once, so no test or run downloads it later
    try:
        print(converter_dir())
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
