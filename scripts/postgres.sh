#!/usr/bin/env bash
# A private PostgreSQL for wisp's tests (and for trying `wisp-scheduler --store postgres://...`),
# idempotently, from nothing:
#   1. installs Debian's `postgresql` package with apt-get when no initdb/pg_ctl is found;
#   2. initdb's a cluster in ${WISP_PG_DIR:-$HOME/.cache/wisp/pg} listening on 127.0.0.1 only,
#      port ${WISP_PG_PORT:-55432}, password auth over TCP, fsync off (test data only);
#   3. starts it unless it is running, and creates role/database wisp (password wisp);
#   4. prints `export WISP_TEST_POSTGRES=postgres://...` on stdout (everything else goes to stderr).
# Usage: eval "$(scripts/postgres.sh)"      scripts/postgres.sh stop
#
# PostgreSQL refuses to run as root: as root, the cluster is owned and run by the `postgres`
# system user (the Debian package creates it); if that user cannot reach the data dir (e.g. it is
# under /root), the cluster goes to /var/lib/postgresql/wisp-pg instead.
set -euo pipefail

say() { printf 'wisp postgres: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

PORT="${WISP_PG_PORT:-55432}"
ROLE="${WISP_PG_ROLE:-wisp}"
PASSWORD="${WISP_PG_PASSWORD:-wisp}"
DATABASE="${WISP_PG_DATABASE:-wisp_test}"
PGDIR="${WISP_PG_DIR:-$HOME/.cache/wisp/pg}"

# The newest installed server's bin dir (Debian keeps them in /usr/lib/postgresql/<ver>/bin).
find_bindir() {
  if [ -n "${WISP_PG_BIN:-}" ]; then
    echo "$WISP_PG_BIN"
    return
  fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then
    echo "$d"
  elif command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
  fi
}

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

BIN="$(find_bindir)"
if [ -z "$BIN" ]; then
  command -v apt-get >/dev/null 2>&1 || die "no PostgreSQL found and no apt-get to install it"
  say "installing PostgreSQL from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >/dev/null
  as_root apt-get install -y -qq postgresql >/dev/null
  BIN="$(find_bindir)"
  [ -n "$BIN" ] || die "postgresql installed but no initdb found under /usr/lib/postgresql"
fi

# Who runs the server: ourselves, or the postgres system user when we are root.
RUN=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root but there is no postgres system user"
  RUN=(runuser -u postgres --)
  mkdir -p "$PGDIR"
  chown postgres: "$PGDIR"
  if ! runuser -u postgres -- test -w "$PGDIR"; then
    [ -z "${WISP_PG_DIR:-}" ] || die "the postgres user cannot write $PGDIR (set WISP_PG_DIR elsewhere)"
    rmdir "$PGDIR" 2>/dev/null || true
    PGDIR=/var/lib/postgresql/wisp-pg
    say "the postgres user cannot reach $HOME; using $PGDIR"
    mkdir -p "$PGDIR"
    chown postgres: "$PGDIR"
  fi
fi
run() { "${RUN[@]}" "$@"; }
[ "$(id -u)" = 0 ] || mkdir -p "$PGDIR"
run chmod 700 "$PGDIR"

if [ "${1:-}" = stop ]; then
  if [ -f "$PGDIR/PG_VERSION" ] && run "$BIN/pg_ctl" -D "$PGDIR" status >/dev/null 2>&1; then
    run "$BIN/pg_ctl" -D "$PGDIR" -m fast -w stop >&2
  fi
  exit 0
fi

if [ ! -f "$PGDIR/PG_VERSION" ]; then
  say "creating a cluster in $PGDIR"
  # The superuser `postgres` logs in over the cluster's own unix socket (in the data dir, only
  # reachable by its owner) without a password; TCP clients need a password.
  run "$BIN/initdb" -D "$PGDIR" --username=postgres --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  run tee -a "$PGDIR/postgresql.conf" >/dev/null <<EOF

# wisp test cluster (scripts/postgres.sh)
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$PGDIR'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
fi

if ! run "$BIN/pg_ctl" -D "$PGDIR" status >/dev/null 2>&1; then
  say "starting PostgreSQL on 127.0.0.1:$PORT"
  run "$BIN/pg_ctl" -D "$PGDIR" -l "$PGDIR/server.log" -w -t 60 start >/dev/null ||
    die "PostgreSQL did not start; see $PGDIR/server.log"
fi

psql_su() { run "$BIN/psql" -h "$PGDIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ "$(psql_su -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
  psql_su -c "CREATE ROLE \"$ROLE\" LOGIN CREATEDB PASSWORD '$PASSWORD'"
fi
if [ "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]; then
  psql_su -c "CREATE DATABASE \"$DATABASE\" OWNER \"$ROLE\""
fi

say "PostgreSQL is ready ($PGDIR)"
echo "export WISP_TEST_POSTGRES=postgres://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DATABASE"
