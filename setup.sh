#!/usr/bin/env bash
# Create .venv in the repo root and install requirements.txt into it. Idempotent: a second run
# installs nothing unless a requirements file changed. PYTHON picks the interpreter (3.11+).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements/*.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "setup: installing requirements into .venv (first run takes a few minutes)" >&2
  .venv/bin/pip install --disable-pip-version-check -q -r requirements.txt
  echo "$want" > "$stamp"
fi
# llama.cpp's converter, of the version llama-cpp-python vendors (its sdist), cached once for
# `python -m convert`; tests never download it (KOKORO_NO_FETCH=1 in tests/conftest.py)
.venv/bin/python -m convert.llamacpp >/dev/null || echo "setup: warning: llama.cpp's converter was not fetched; \
python -m convert will need --llama-cpp DIR" >&2
