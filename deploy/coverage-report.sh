#!/usr/bin/env bash
# `make test`, after `coverage run -m pytest`: combine the data of the test process and of
# every Python child it started (the e2e suite's six uvicorn processes, migrations, CLIs),
# print branch coverage per package and the ten least-covered modules, and fail under the
# bar set in pyproject.toml ([tool.coverage.report] fail_under).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-uv run --frozen}
PACKAGES=(shared gateway services/auth services/projects services/tickets services/notifications
  services/webhooks deploy/devstack)

$RUN coverage combine --quiet

echo "coverage per package (lines + branches):"
for package in "${PACKAGES[@]}"; do
  total=$($RUN coverage report --include="$PWD/$package/src/*" --format=total --fail-under=0)
  printf '  %-24s %5s %%\n' "$package" "$total"
done

# The full table, least covered first, is kept in .coverage-report.txt (git-ignored).
status=0
$RUN coverage report --sort=cover >.coverage-report.txt || status=$?
echo "least-covered modules (full table in .coverage-report.txt, HTML with 'coverage html'):"
sed -n '1,12p' .coverage-report.txt
grep -E '^TOTAL' .coverage-report.txt
tail -n 1 .coverage-report.txt | grep -v '^TOTAL' || true
exit "$status"
