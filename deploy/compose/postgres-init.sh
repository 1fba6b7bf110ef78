#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data directory
# (/docker-entrypoint-initdb.d). Does what deploy/devstack's `bootstrap_database` does:
# one database, and per service one login role that owns one schema and nothing else.
# Passwords come from the environment (.env); nothing here is a secret.
set -euo pipefail

DATABASE=${BUGTRACKER_DATABASE:-bugtracker}
SERVICES=(auth projects tickets notifications webhooks)

psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --quiet)

if [ "$("${psql[@]}" --dbname postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]; then
  "${psql[@]}" --dbname postgres -c "CREATE DATABASE \"$DATABASE\""
fi

for service in "${SERVICES[@]}"; do
  var="BUGTRACKER_${service^^}_DB_PASSWORD"
  if [ -z "${!var:-}" ]; then
    echo "postgres-init: $var is not set" >&2
    exit 1
  fi
done

{
  echo "REVOKE ALL ON DATABASE \"$DATABASE\" FROM PUBLIC;"
  echo "REVOKE ALL ON SCHEMA public FROM PUBLIC;"
  for service in "${SERVICES[@]}"; do
    var="BUGTRACKER_${service^^}_DB_PASSWORD"
    role="bugtracker_${service}"
    # psql variables quote the password as a literal (:'name'), whatever it contains.
    echo "\\set pw '${!var//\'/\'\'}'"
    echo "SELECT format('%s ROLE $role LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L',"
    echo "  CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$role') THEN 'ALTER' ELSE 'CREATE' END,"
    echo "  :'pw') \\gexec"
    echo "GRANT CONNECT ON DATABASE \"$DATABASE\" TO $role;"
    echo "CREATE SCHEMA IF NOT EXISTS $service AUTHORIZATION $role;"
    echo "ALTER ROLE $role SET search_path = $service;"
  done
} | "${psql[@]}" --dbname "$DATABASE"
echo "postgres-init: database $DATABASE with roles and schemas for ${SERVICES[*]}"
