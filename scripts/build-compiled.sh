#!/usr/bin/env bash
# Builds the proxy compiled by mypyc (SLUICE_COMPILE=1, see setup.py) as a wheel, unpacks it
# into build/compiled and prints that directory: put it first on PYTHONPATH to run the compiled
# proxy from this checkout. Rebuilt only when the sources or the build changed (~1.5 min).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
out=build/compiled
# Every file of the package counts (its Lua scripts and YAML go into the wheel too), and mypy's version.
stamp=$( (cat setup.py pyproject.toml; find proxy -type f ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 cat
  "$PY" -m mypy --version) | sha256sum | cut -c1-16)
if [[ -f $out/.stamp && $(cat "$out/.stamp") == "$stamp" ]]; then
  echo "$out"; exit 0
fi
echo "[build-compiled] compiling the proxy with mypyc (about 1.5 minutes)" >&2
rm -rf build  # stale objects of an earlier build would reach the wheel
SLUICE_COMPILE=1 "$PY" -m pip wheel -q --no-build-isolation --no-deps --wheel-dir build/wheel . >&2
"$PY" -m zipfile -e build/wheel/sluice-*.whl "$out"
echo "$stamp" > "$out/.stamp"
echo "$out"
