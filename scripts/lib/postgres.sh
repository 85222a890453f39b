# A throw-away PostgreSQL for the local stacks (`just dev`, `just dev-dapr`),
# sourced by their scripts. Defines:
#
#   pg_start DIR PORT   initdb + start in DIR (wiped first) on 127.0.0.1:PORT,
#                       as the postgres user when run as root (initdb refuses
#                       root); sets DATABASE_URL
#   pg_stop             fast shutdown (safe to call twice)
#
# Needs `die` and `say` from the caller.

pg_bin=${PG_BIN_DIR:-}
if [ -z "$pg_bin" ]; then
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        pg_bin=$(dirname "$(command -v initdb)")
    else
        pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    fi
fi
as_pg=()
pg_abs=

pg_start() {
    local dir=$1 port=$2
    [ -x "$pg_bin/initdb" ] || die "PostgreSQL server binaries not found: install PostgreSQL (apt install postgresql) or set PG_BIN_DIR"
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user for initdb"
        chown -R postgres "$dir"
        as_pg=(runuser -u postgres --)
    fi
    pg_abs=$(cd "$dir" && pwd)
    "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_abs/data" -U postgres --auth=trust -E UTF8 --no-sync >"$pg_abs/initdb.log" 2>&1 \
        || die "initdb failed; see $pg_abs/initdb.log"
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_abs/data" -l "$pg_abs/server.log" -w \
        -o "-p $port -k $pg_abs -c listen_addresses=127.0.0.1" start >/dev/null \
        || die "PostgreSQL did not start; see $pg_abs/server.log"
    DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

pg_stop() {
    [ -n "$pg_abs" ] || return 0
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_abs/data" -m fast -w stop >/dev/null 2>&1 || true
    pg_abs=
}
