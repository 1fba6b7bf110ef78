#!/usr/bin/env bash
# `make container-check`: build the six images with podman, run docker-compose.yml with
# podman-compose, drive the README's walk-through through the gateway container, print the
# timings, and tear everything down whatever happened. Not part of `make test`.
#
# Needs root (or sudo) for apt and rootful podman. Where python:3.11-slim, postgres:15 and
# rabbitmq:3-management cannot be pulled (no image registry reachable), it builds stand-ins
# locally: a Debian 12 base with debootstrap (cached) and PostgreSQL/RabbitMQ on top of it.
# All traffic goes to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=deploy/container
PROJECT=bugtracker-check
COMPONENTS=(gateway auth projects tickets notifications webhooks)
# Every service outside a profile. podman-compose 1.0.3 knows no `profiles:` and would
# create the observability profile's containers (pulling their images) unless told which.
STACK=(postgres rabbitmq redis migrate-auth migrate-projects migrate-tickets migrate-notifications
  migrate-webhooks create-admin "${COMPONENTS[@]}")
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
DEADLINE_SECONDS=${CONTAINER_CHECK_DEADLINE:-240}

log() { printf '\n==> %s\n' "$*"; }
now() { date +%s; }

# CONTAINER_CHECK_SOURCE=head builds the committed code (git archive HEAD, read-only) with
# the work tree's deployment files on top: useful while sources are being edited.
if [ "${CONTAINER_CHECK_SOURCE:-worktree}" = head ]; then
  SNAPSHOT=$(mktemp -d /tmp/bugtracker-container-src.XXXXXX)
  git archive HEAD | tar -x -C "$SNAPSHOT"
  tar -c .dockerignore .env.example docker-compose.yml README.md deploy Dockerfile \
    | tar -x -C "$SNAPSHOT"
  echo "container-check: building HEAD ($(git rev-parse --short HEAD)) from $SNAPSHOT"
  cd "$SNAPSHOT"
  ROOT=$PWD
fi

bash "$HERE/setup-podman.sh"
for tool in curl jq; do
  command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
done

# The gateway's host port: 8000 unless something (e.g. `make up`) already listens there.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=${CONTAINER_CHECK_PORT:-8000}
if ! port_free "$PORT"; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "container-check: 127.0.0.1:8000 is in use; publishing the gateway on 127.0.0.1:$PORT"
fi

# A throw-away configuration: .env.example's keys with random passwords, exported so that
# compose interpolation uses them (a developer's own .env is neither read nor touched).
WORK=$(mktemp -d /tmp/bugtracker-container-check.XXXXXX)
while IFS= read -r line; do
  case "$line" in
    ''|'#'*) continue ;;
    # A key, not a password: base64 of 32 bytes.
    BUGTRACKER_WEBHOOKS_SECRET_KEY=change-me*)
      echo "${line%%=*}=$(python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())')" ;;
    *=change-me*) echo "${line%%=*}=$(python3 -c 'import secrets; print(secrets.token_hex(16))')" ;;
    *) echo "$line" ;;
  esac
done <.env.example >"$WORK/env"
{
  echo "BUGTRACKER_GATEWAY_PUBLISH=127.0.0.1:$PORT"
  echo "BUGTRACKER_IMAGE_PREFIX=localhost/bugtracker"
  echo "BUGTRACKER_IMAGE_TAG=check"
} >>"$WORK/env"
set -a
# shellcheck disable=SC1091
source "$WORK/env"
set +a

COMPOSE=(podman-compose -p "$PROJECT" -f docker-compose.yml)
cleanup() {
  status=$?
  set +e
  if [ "$status" -ne 0 ]; then
    log "failed (exit $status): last logs"
    for c in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
      echo "--- $c"; podman logs --tail 30 "$c" 2>&1
    done
  fi
  log "tearing down"
  "${COMPOSE[@]}" down -v >"$WORK/compose-down.log" 2>&1
  # Whatever podman-compose left behind: only this project's containers and volumes.
  leftovers=$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT")
  [ -z "$leftovers" ] || podman rm -f $leftovers >/dev/null 2>&1
  volumes=$(podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT")
  [ -z "$volumes" ] || podman volume rm -f $volumes >/dev/null 2>&1
  echo "  removed; containers left: $(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" | wc -l)"
  rm -rf "$WORK" "${SNAPSHOT:-}"
  exit "$status"
}
trap cleanup EXIT
"${COMPOSE[@]}" down -v >/dev/null 2>&1 || true   # leftovers of an interrupted run

log "base image"
t0=$(now)
BASE_IMAGE=$(bash "$HERE/base-image.sh")
echo "BASE_IMAGE=$BASE_IMAGE"
t_base=$(($(now) - t0))

log "building images"
build=(podman build --network=host --format docker --build-arg "BASE_IMAGE=$BASE_IMAGE")
[ -f "$CA_BUNDLE" ] && build+=(-v "$CA_BUNDLE:$CA_BUNDLE:ro")
t0=$(now)
for c in "${COMPONENTS[@]}"; do
  tc=$(now)
  "${build[@]}" --build-arg "COMPONENT=$c" -t "localhost/bugtracker-$c:check" . >"$WORK/build-$c.log" 2>&1 \
    || { tail -30 "$WORK/build-$c.log"; exit 1; }
  printf '  %-14s %4ss  %s\n' "$c" "$(($(now) - tc))" \
    "$(podman image inspect --format '{{.Size}}' "localhost/bugtracker-$c:check" | numfmt --to=iec)"
done
t_build=$(($(now) - t0))

# PostgreSQL, RabbitMQ and Redis: the real images when pullable, local stand-ins otherwise.
if timeout 30 podman pull -q docker.io/library/postgres:15 >/dev/null 2>&1 \
  && timeout 30 podman pull -q docker.io/library/rabbitmq:3-management >/dev/null 2>&1 \
  && timeout 30 podman pull -q docker.io/library/redis:7 >/dev/null 2>&1; then
  echo "  postgres:15, rabbitmq:3-management and redis:7 pulled"
else
  tc=$(now)
  for infra in postgres:15 rabbitmq:3 redis:7; do
    "${build[@]}" -f "$HERE/${infra%%:*}.Containerfile" -t "localhost/bugtracker-check-$infra" "$HERE" \
      >"$WORK/build-${infra%%:*}.log" 2>&1 || { tail -30 "$WORK/build-${infra%%:*}.log"; exit 1; }
  done
  COMPOSE+=(-f "$HERE/compose.local-infra.yml")
  echo "  no registry: local PostgreSQL 15, RabbitMQ and Redis stand-ins ($(($(now) - tc))s)"
fi

# podman-compose 1.0.3 ignores depends_on conditions and runs no healthchecks (and its
# `up --no-deps` restarts dependencies anyway). So compose creates every container,
# network and volume without starting them, and this script starts them in the order that
# `service_healthy` / `service_completed_successfully` give.
container() { echo "${PROJECT}_$1_1"; }
wait_for() { # name, command...
  local name=$1; shift
  local deadline=$(($(now) + DEADLINE_SECONDS))
  until "$@" >/dev/null 2>&1; do
    if [ "$(now)" -gt "$deadline" ]; then echo "container-check: $name not ready in time" >&2; return 1; fi
    sleep 1
  done
}
# (podman start warns that it cannot register healthchecks without systemd: expected here)
start() { for s in "$@"; do podman start "$(container "$s")" >/dev/null 2>>"$WORK/podman.log"; done; }
one_shot() { # services: run them side by side, require exit code 0 from each
  start "$@"
  for s in "$@"; do
    code=$(podman wait "$(container "$s")")
    podman logs "$(container "$s")" 2>&1 | tail -3 | sed "s/^/  [$s] /"
    [ "$code" = 0 ] || { echo "container-check: $s exited with $code" >&2; return 1; }
  done
}
http_ok() { podman exec "$(container "$1")" python -c \
  "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:$2', timeout=2).status != 200)"; }

log "starting the stack"
t0=$(now)
"${COMPOSE[@]}" up --no-start --no-build "${STACK[@]}" >"$WORK/compose-up.log" 2>&1 \
  || { tail -30 "$WORK/compose-up.log"; exit 1; }
start postgres rabbitmq redis
wait_for postgres podman exec "$(container postgres)" pg_isready -h 127.0.0.1 -U postgres -d bugtracker
wait_for rabbitmq podman exec "$(container rabbitmq)" rabbitmq-diagnostics -q check_port_connectivity
wait_for redis podman exec "$(container redis)" redis-cli ping
echo "  postgres, rabbitmq and redis ready after $(($(now) - t0))s"
one_shot migrate-auth migrate-projects migrate-tickets migrate-notifications migrate-webhooks
one_shot create-admin
start auth
wait_for auth http_ok auth 8001/health/ready
start projects notifications
wait_for projects http_ok projects 8002/health/ready
start webhooks
start tickets
wait_for tickets http_ok tickets 8003/health/ready
wait_for notifications http_ok notifications 8004/health/ready
wait_for webhooks http_ok webhooks 8005/health/ready
start gateway
wait_for "gateway /health" curl -fsS "http://127.0.0.1:$PORT/health"
t_start=$(($(now) - t0))
echo "  all healthy after ${t_start}s; gateway /health: $(curl -s "http://127.0.0.1:$PORT/health")"

log "README walk-through against http://127.0.0.1:$PORT"
awk '/^## A walk through the API/{on=1} on && /^```sh/{inside=1; next} inside && /^```/{exit} inside' \
  README.md | sed "s#^API=.*#API=http://127.0.0.1:$PORT/api/v1#" >"$WORK/walkthrough.sh"
grep -q '^API=http://127.0.0.1:' "$WORK/walkthrough.sh"
# Then, since the notification travels asynchronously (outbox, broker, consumer): how long
# until Bob's unread count is 1.
cat >>"$WORK/walkthrough.sh" <<'STEP'
for i in $(seq 1 50); do
  [ "$(curl -s $API/notifications/unread-count -H "authorization: Bearer $BOB_TOKEN" | jq .count)" = 1 ] && break
  sleep 0.2
done
echo "unread-count after the walk-through: $(curl -s $API/notifications/unread-count \
  -H "authorization: Bearer $BOB_TOKEN") (waited $((i - 1)) x 0.2 s)"
STEP
t0=$(now)
bash -eo pipefail "$WORK/walkthrough.sh" 2>&1 | tee "$WORK/walkthrough.out"
t_walk=$(($(now) - t0))
unauthorized=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/v1/projects")
echo "unauthenticated GET /api/v1/projects -> $unauthorized"

log "timings"
printf '  base image   %4ss\n  build (6)    %4ss\n  start        %4ss\n  walk-through %4ss\n' \
  "$t_base" "$t_build" "$t_start" "$t_walk"
cd "$ROOT"
