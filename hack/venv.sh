#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv in .venv and install the project
# with its development tools from the pinned dev lock (requirements-dev.txt); a change
# to setup.cfg or the lock reinstalls. Prints the venv's bin directory.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
stamp="$venv/.installed"
want="$(cat "$repo/setup.cfg" "$repo/requirements-dev.txt" | sha256sum | cut -c1-16)"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv" >&2
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  for attempt in 1 2 3; do
    if "$venv/bin/pip" install -q --disable-pip-version-check -e "$repo" -r "$repo/requirements-dev.txt" >&2; then
      echo "$want" > "$stamp"; break
    fi
    [[ $attempt == 3 ]] && { echo "pip install failed" >&2; exit 1; }
    sleep $((attempt * 5))
  done
fi
# Bytecode as a pip install leaves it: an editable install only writes it on first
# import, which PYTHONDONTWRITEBYTECODE (set in some CI images) prevents, and every run
# would then recompile the package (~0.2 s per command). Only changed files are redone.
"$venv/bin/python" -m compileall -q -j 0 "$repo/kubectl_build" >/dev/null
echo "$venv/bin"
