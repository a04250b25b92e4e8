#!/usr/bin/env bash
# The benchmark suite in one command: bench/run.sh [--quick] [--only overhead,stream,...] [--keep] [--interpreted]
# Installs wrk and redis-server with apt-get when they are missing (as root), builds the proxy
# compiled by mypyc as the image ships it (scripts/build-compiled.sh; --interpreted: the source
# tree instead), then runs `python -m bench`.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v taskset >/dev/null || missing+=(util-linux)
if [[ " $* " == *instructions* ]]; then
  command -v valgrind >/dev/null || missing+=(valgrind)  # the opt-in instruction count
fi
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
  else
    echo "bench: missing ${missing[*]}; install them (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
    exit 2
  fi
fi

python=.venv/bin/python
[[ -x $python ]] || { echo "bench: no .venv; run: python3.11 -m venv .venv && .venv/bin/pip install -e '.[test]'" >&2; exit 2; }
if [[ " $* " != *" --only "* || " $* " == *profile* ]] && [[ ! -x .venv/bin/py-spy ]]; then
  # The profile scenario samples the proxy with py-spy; it is a bench tool, not a project dependency.
  .venv/bin/pip install -q py-spy || echo "bench: could not install py-spy; the profile scenario will fail" >&2
fi
if [[ " $* " != *" --interpreted "* ]]; then
  PYTHONPATH=$PWD/$(scripts/build-compiled.sh)
  export PYTHONPATH
fi
exec "$python" -m bench "$@"
