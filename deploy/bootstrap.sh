#!/usr/bin/env bash
# Installs what `make up` and `make test` need and is missing, on Debian 12:
# PostgreSQL 15, RabbitMQ and Redis from apt, uv from PyPI into .tools/ (unless uv is on PATH),
# then the locked workspace into .venv/. Idempotent and quick when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
{ command -v rabbitmq-server >/dev/null || [ -x /usr/sbin/rabbitmq-server ]; } || missing+=(rabbitmq-server)
{ command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ]; } || missing+=(redis-server)
# runuser starts the servers as their own users when we are root (they refuse root).
[ -n "$SUDO" ] || command -v runuser >/dev/null || [ -x /usr/sbin/runuser ] || missing+=(util-linux)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]} from apt"
  # The packages' own services are not used (no systemd needed): we run private instances.
  # apt's chatter (e.g. debconf's "delaying package configuration") is shown only on failure.
  log=$(mktemp)
  if ! { $SUDO apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "bootstrap: apt-get failed (above)" >&2
    exit 1
  fi
  rm -f "$log"
fi

if ! command -v uv >/dev/null && [ ! -x .tools/bin/uv ]; then
  echo "bootstrap: installing uv from PyPI into .tools/"
  python3 -m venv .tools
  # -qq keeps pip to errors: a machine's pip.conf may name extra package locations, and
  # pip warns about each one that lacks uv although the install itself succeeds.
  .tools/bin/pip install -qq --disable-pip-version-check uv
fi
UV=$(command -v uv || echo .tools/bin/uv)
"$UV" sync --frozen --quiet
