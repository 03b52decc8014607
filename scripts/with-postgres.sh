#!/usr/bin/env bash
# Runs a command beside a throwaway PostgreSQL cluster, with FUSELAB_TEST_POSTGRES_URL naming
# it: a unix socket in a temporary folder (no TCP port), fsync off, removed on exit. initdb
# refuses to run as root, so as root the cluster belongs to the `postgres` user.
#
#   scripts/with-postgres.sh cargo test -p fuselab --release --test jobs_store
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "with-postgres.sh: PostgreSQL's server is not installed (apt-get install postgresql)" >&2
  exit 2
fi
dir=$(mktemp -d /tmp/fuselab-pg.XXXXXX)
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$dir"
  as_owner=(runuser -u postgres --)
fi
stop() {
  "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-k $dir -c listen_addresses= -c fsync=off -c synchronous_commit=off -c max_connections=200" start >/dev/null
export FUSELAB_TEST_POSTGRES_URL="postgres://postgres@localhost/postgres?host=$dir"
"$@"
