"""``python -m kokoro.llm_server ARGS``: llama-cpp-python's OpenAI-compatible server
(``python -m llama_cpp.server ARGS``, the same arguments) with the project's CPU weight layout
(``kokoro.llm.cpu_layout``, ``KOKORO_EXTRA_BUFTS``) installed first, so the scale-out deployment
loads its model the way the bot does and does not segfault on a CPU with AMX."""

from __future__ import annotations

import logging
import sys


def main(argv=None) -> None:
    from .llm import cpu_layout

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    cpu_layout()
    from llama_cpp.server.__main__ import main as serve

    sys.argv = ["llama_cpp.server"] + list(sys.argv[1:] if argv is None else argv)
    serve()


if __name__ == "__main__":
    main()
