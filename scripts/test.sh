#!/usr/bin/env bash
# Install everything the test suite needs, then run it all.
#   - the package with its test extras (pip, into the active Python / virtualenv)
#   - Debian packages of the real servers and browser the tests drive, when run as root:
#     prometheus-alertmanager, prometheus, chromium (+ chromium-driver)
# Extra arguments go to pytest (e.g. scripts/test.sh -k slack).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
DEBIAN_PACKAGES=(prometheus-alertmanager prometheus chromium chromium-driver)

echo "==> pip install -e .[test]"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e ".[test]"

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "==> apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "note: not root or no apt-get; install ${missing[*]} to run the tests that need them" >&2
    echo "      (those tests skip with a reason until then)" >&2
  fi
fi

echo "==> ruff"
"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .

echo "==> mypy"
"$PYTHON" -m mypy

echo "==> pytest"
# two workers on two cores: test files are independent (each test has its own DB and ports)
exec "$PYTHON" -m pytest -n 2 --dist loadfile -q -p no:cacheprovider "$@"
