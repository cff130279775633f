#!/usr/bin/env bash
# A PostgreSQL for the audit-store tests (tests/test_audit_store.py). Idempotent.
#
#   eval "$(scripts/ci-postgres.sh)"
#
# When LEGSPASM_TEST_POSTGRES_URL is already set, that database is used as it is. Otherwise:
# install PostgreSQL with apt-get if pg_ctlcluster is absent, start the first cluster
# (pg_lsclusters), create the role and database "cds" (password "cds") if absent. Prints only
# `export ...` lines on stdout (everything else goes to stderr), so that its output can be eval'd.
set -euo pipefail

log() { echo "ci-postgres: $*" >&2; }

if [[ -n "${LEGSPASM_TEST_POSTGRES_URL:-}" ]]; then
  log "LEGSPASM_TEST_POSTGRES_URL is set; using that database"
  echo "export LEGSPASM_REQUIRE_POSTGRES=1"
  exit 0
fi

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

as_postgres() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    sudo -u postgres -- "$@"
  fi
}

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  log "installing PostgreSQL (apt-get)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
fi

first_cluster() { pg_lsclusters --no-header 2>/dev/null | awk 'NR == 1 { print $1, $2, $3, $4 }'; }

cluster=$(first_cluster)
if [[ -z "$cluster" ]]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  log "no cluster found; creating $version/main"
  as_root pg_createcluster "$version" main >&2
  cluster=$(first_cluster)
fi
read -r version name port status <<<"$cluster"

if [[ "$status" != online* ]]; then
  log "starting cluster $version/$name (port $port)"
  as_root pg_ctlcluster "$version" "$name" start >&2
fi
for _ in $(seq 1 60); do
  if pg_isready -q -h 127.0.0.1 -p "$port"; then break; fi
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$port" >&2 || { log "PostgreSQL $version/$name is not ready"; exit 1; }

psql_postgres() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$port" "$@"; }

if [[ -z "$(psql_postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'cds'")" ]]; then
  log "creating role cds"
  psql_postgres -c "CREATE ROLE cds LOGIN PASSWORD 'cds'" >&2
fi
if [[ -z "$(psql_postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'cds'")" ]]; then
  log "creating database cds"
  psql_postgres -c "CREATE DATABASE cds OWNER cds" >&2
fi

echo "export LEGSPASM_TEST_POSTGRES_URL=postgresql+psycopg://cds:cds@127.0.0.1:${port}/cds"
echo "export LEGSPASM_REQUIRE_POSTGRES=1"
