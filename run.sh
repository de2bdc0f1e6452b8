#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv (if missing), installs the project into it
# (again only when pyproject.toml changed), then runs the requested job.
#   bash run.sh pipeline   the whole pipeline on the bundled defaults
#   bash run.sh test       the test suite
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

job="${1:-}"; shift || true
case "$job" in
  pipeline|test) ;;
  *) echo "usage: bash run.sh pipeline|test [args...]" >&2; exit 2 ;;
esac

python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$python_bin" --version)" >&2
  "$python_bin" -m venv .venv
fi
stamp=.venv/.seemore-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing seemore-mobile and its toolchain into .venv (first run: a few minutes)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[export,dev]"
  echo "$want" > "$stamp"
fi

case "$job" in
  pipeline) exec .venv/bin/python -m seemore.pipeline "$@" ;;
  # Two workers (the CI machines' two cores), each test module on one of them so that its
  # export fixture is built once; every worker runs torch single-threaded (tests/conftest.py).
  test) exec .venv/bin/python -m pytest -q -n "${SEEMORE_TEST_WORKERS:-2}" --dist loadfile "$@" ;;
esac
