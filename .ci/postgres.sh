#!/usr/bin/env bash
# Start a PostgreSQL server for the sweep tests where one can be started (root on Debian: the
# distribution's package). Prints the SQLAlchemy URL on success; prints nothing (and the tests
# that need it skip, saying why) where no server can be had.
set -u
url="postgresql+psycopg://spikeforge:spikeforge@127.0.0.1:5432/spikeforge_test"
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq postgresql >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq postgresql >/dev/null 2>&1)) || exit 0
  else
    exit 0
  fi
fi
cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1" "$2}')
[ -n "$cluster" ] || exit 0
pg_ctlcluster $cluster start >/dev/null 2>&1 || true
for _ in $(seq 1 30); do
  su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
  sleep 0.5
done
su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='spikeforge'\"" 2>/dev/null | grep -q 1 ||
  su postgres -c "psql -qc \"create user spikeforge password 'spikeforge' createdb\"" >/dev/null 2>&1 || exit 0
su postgres -c "psql -qtAc \"select 1 from pg_database where datname='spikeforge_test'\"" 2>/dev/null | grep -q 1 ||
  su postgres -c "createdb -O spikeforge spikeforge_test" >/dev/null 2>&1 || exit 0
echo "$url"
