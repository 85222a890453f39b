#!/bin/bash
# The entry point of the local cluster's PostgreSQL image, keeping the part
# of the official postgres image's contract that k8s/base/postgres relies
# on: on an empty $PGDATA, initialise it with superuser $POSTGRES_USER
# (password $POSTGRES_PASSWORD), create $POSTGRES_DB, run the scripts in
# /docker-entrypoint-initdb.d once against a server reachable only through
# its socket; then serve on every address with password authentication.
# Runs as whatever non-root user the pod chooses.
set -euo pipefail
: "${PGDATA:?PGDATA is required}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
export POSTGRES_USER=${POSTGRES_USER:-postgres}
export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 -D "$PGDATA" >/dev/null
    printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
    if [ "$POSTGRES_DB" != postgres ]; then
        # psql quotes the name from a variable (not in -c, hence stdin).
        echo 'CREATE DATABASE :"db"' | psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
            --dbname postgres -v db="$POSTGRES_DB" >/dev/null
    fi
    for script in /docker-entrypoint-initdb.d/*; do
        case $script in
            *.sh) echo "running $script"; if [ -x "$script" ]; then "$script"; else . "$script"; fi ;;
            *.sql) echo "running $script"; psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$script" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -c listen_addresses='*' "$@"
