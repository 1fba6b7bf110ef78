# check=skip=InvalidDefaultArgInFrom
# Every component's image, from this one file: only bugtracker-<component> and
# bugtracker-shared with their locked dependencies. Build it from the repository root (the
# uv workspace), naming the component (gateway, auth, projects, tickets, notifications or
# webhooks):
#   docker build --build-arg COMPONENT=tickets -t bugtracker-tickets .
# One file, not one per component (docs/adr/0008): the build, the user, the health check
# and the server flags are written once and cannot drift apart. What differs is written
# once too: per component, its directory and port (the <component>-base stages); per kind,
# migrations and forwarded headers for the services, its own command for the gateway.
ARG BASE_IMAGE=python:3.11-slim
# No default: a build that does not name its component fails (FROM "-base") instead of
# building another one. The check directive above silences BuildKit's warning about that.
ARG COMPONENT

# uv from PyPI (no image registry besides the base image's). TLS trusts the system CA bundle,
# so a build behind a TLS-inspecting proxy works with that bundle mounted or installed.
# A stage of its own so that one uv install serves every component's build.
FROM ${BASE_IMAGE} AS uv
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"

# Per component: its package name, its directory in the workspace and its port. ENV rather
# than ARG because only ENV passes to the stages built on top (FROM ${COMPONENT}-base),
# where COPY, EXPOSE, the command and the health check read them; the image keeps them.
# (Not a bare PORT or <NAME>_PORT: Kubernetes sets <SERVICE>_PORT for every Service.)
FROM ${BASE_IMAGE} AS gateway-base
ENV BUGTRACKER_COMPONENT=gateway BUGTRACKER_COMPONENT_DIR=gateway \
    BUGTRACKER_COMPONENT_PORT=8000

FROM ${BASE_IMAGE} AS auth-base
ENV BUGTRACKER_COMPONENT=auth BUGTRACKER_COMPONENT_DIR=services/auth \
    BUGTRACKER_COMPONENT_PORT=8001
# Signing keys (ADR 0001): a named volume in compose, a mounted Secret in Kubernetes.
# Owned by the bugtracker user (uid/gid 10001, created in the runtime stage), mode 0700.
ENV BUGTRACKER_AUTH_KEYS_DIR=/var/lib/bugtracker/keys
RUN mkdir -p /var/lib/bugtracker/keys \
    && chown -R 10001:10001 /var/lib/bugtracker && chmod 0700 /var/lib/bugtracker/keys

FROM ${BASE_IMAGE} AS projects-base
ENV BUGTRACKER_COMPONENT=projects BUGTRACKER_COMPONENT_DIR=services/projects \
    BUGTRACKER_COMPONENT_PORT=8002

FROM ${BASE_IMAGE} AS tickets-base
ENV BUGTRACKER_COMPONENT=tickets BUGTRACKER_COMPONENT_DIR=services/tickets \
    BUGTRACKER_COMPONENT_PORT=8003
# Attachments' bytes (docs/adr/0041): a named volume in compose, a PersistentVolumeClaim
# in Kubernetes (or an S3-compatible store instead). A volume mounted here takes the
# directory's owner, the bugtracker user (uid/gid 10001).
ENV BUGTRACKER_ATTACHMENTS_DIR=/var/lib/bugtracker/attachments
RUN mkdir -p /var/lib/bugtracker/attachments && chown -R 10001:10001 /var/lib/bugtracker

FROM ${BASE_IMAGE} AS notifications-base
ENV BUGTRACKER_COMPONENT=notifications BUGTRACKER_COMPONENT_DIR=services/notifications \
    BUGTRACKER_COMPONENT_PORT=8004

FROM ${BASE_IMAGE} AS webhooks-base
ENV BUGTRACKER_COMPONENT=webhooks BUGTRACKER_COMPONENT_DIR=services/webhooks \
    BUGTRACKER_COMPONENT_PORT=8005

FROM ${COMPONENT}-base AS build
COPY --from=uv /opt/uv /opt/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_SYSTEM_CERTS=1
WORKDIR /src
# Third-party dependencies first: this layer is rebuilt only when the lock or a manifest changes.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/
COPY ${BUGTRACKER_COMPONENT_DIR}/pyproject.toml ${BUGTRACKER_COMPONENT_DIR}/
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-install-workspace \
      --package "bugtracker-${BUGTRACKER_COMPONENT}"
COPY shared/src shared/src
COPY ${BUGTRACKER_COMPONENT_DIR}/src ${BUGTRACKER_COMPONENT_DIR}/src
# Non-editable: the virtualenv holds the packages themselves, not links to /src.
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-editable \
      --package "bugtracker-${BUGTRACKER_COMPONENT}"

FROM ${COMPONENT}-base AS runtime
RUN groupadd --system --gid 10001 bugtracker \
    && useradd --system --uid 10001 --gid bugtracker --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin bugtracker
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
USER 10001:10001
EXPOSE ${BUGTRACKER_COMPONENT_PORT}
# /health/live: this process serves (no backend or database call; readiness is
# /health/ready, and the gateway's /health is its view of the backends).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ['BUGTRACKER_COMPONENT_PORT'], timeout=2).status != 200)"]

FROM runtime AS service
# Migrations run as a separate one-shot command from /app, never at process start:
#   docker run --rm --env-file .env bugtracker-tickets python -m alembic -c alembic.ini upgrade head
# (root-owned and read-only for the service's user, like the virtualenv)
COPY ${BUGTRACKER_COMPONENT_DIR}/alembic.ini ./alembic.ini
COPY ${BUGTRACKER_COMPONENT_DIR}/migrations ./migrations
# X-Forwarded-For/-Proto count only from the gateway's address(es) (docs/adr/0027):
# BUGTRACKER_FORWARDED_ALLOW_IPS, addresses or networks; empty, from no peer.
ENV BUGTRACKER_FORWARDED_ALLOW_IPS=""
# A shell to expand the variables at start; `exec` leaves uvicorn as PID 1 for signals.
CMD ["sh", "-c", "exec uvicorn \"bugtracker_${BUGTRACKER_COMPONENT}.main:create_app\" --factory --host 0.0.0.0 --port \"$BUGTRACKER_COMPONENT_PORT\" --no-access-log --timeout-graceful-shutdown 5 --timeout-keep-alive 75 --forwarded-allow-ips \"$BUGTRACKER_FORWARDED_ALLOW_IPS\""]

FROM runtime AS gateway
# No migrations: the gateway has no database.
# --no-server-header: no `server: uvicorn` on the public side (a middleware cannot drop it).
# --no-proxy-headers: the gateway decides the client address itself, trusting the proxies
# of BUGTRACKER_GATEWAY_TRUSTED_PROXIES only (docs/adr/0027).
CMD ["uvicorn", "bugtracker_gateway.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--no-access-log", "--no-server-header", "--no-proxy-headers", "--timeout-graceful-shutdown", "5", "--timeout-keep-alive", "75"]

# The image COMPONENT names (the last stage is what `docker build` builds without --target):
# every service is the service stage (auth with its keys directory from auth-base).
FROM service AS auth
FROM service AS projects
FROM service AS tickets
FROM service AS notifications
FROM service AS webhooks
FROM ${COMPONENT}
