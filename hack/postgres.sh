#!/usr/bin/env bash
# The local cluster's store: a PostgreSQL server of its own (Debian's postgresql
# package, not its system cluster), run as the postgres user (PostgreSQL refuses
# root), with its data, socket and log in .cluster/postgres-<cluster>/.
#
#   hack/postgres.sh up                # start it (idempotent); installs postgresql when missing
#   hack/postgres.sh down              # stop it and remove its directory
#   hack/postgres.sh dsn               # the DSN of its database, for the manager and task pods
#   hack/postgres.sh status            # exit 0 when it runs
#   hack/postgres.sh ensure-installed  # apt-get install postgresql when it is missing (root)
#
# It listens on 127.0.0.1 and, when the cluster's real node runs (start it after the
# node), on the host's address on the node's bridge (hack/node.sh host-address), where
# task pods reach it; the DSN names that address then (this host reaches it too), else
# 127.0.0.1. One role and database, both cost_analysis, with a random password kept in
# the directory (mode 0600); password (scram-sha-256) logins from 127.0.0.1 and from
# the node's pod subnet only. The manager applies the schema itself.
#
# Environment: CLUSTER_NAME (default cost-analysis), CLUSTER_STORE_PORT (the port;
# default 55432 for the default cluster, a free port chosen once for any other).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER_NAME=${CLUSTER_NAME:-cost-analysis}
dir="$root/.cluster/postgres-$CLUSTER_NAME"
data="$dir/data"
sockdir="$dir/sock"

log() { echo "store: $*" >&2; }
die() { log "$*"; exit 1; }

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n "$d" && -x "$d/postgres" ]] || return 1
  echo "$d"
}

ensure_installed() {
  pg_bin >/dev/null && return 0
  [[ $(id -u) == 0 ]] || die "PostgreSQL is not installed and this is not root: apt-get install postgresql"
  log "installing Debian's postgresql (apt-get)"
  apt-get update -qq >&2
  # policy-rc.d keeps the package from starting the system's own cluster.
  local policy=/usr/sbin/policy-rc.d created=""
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    created=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql postgresql-client >&2 ||
    { [[ -z "$created" ]] || rm -f "$policy"; die "apt-get install postgresql failed"; }
  [[ -z "$created" ]] || rm -f "$policy"
  pg_bin >/dev/null || die "postgresql installed but no /usr/lib/postgresql/*/bin/postgres"
}

# as_pg CMD...: runs CMD as the postgres user (or as ourselves when not root).
as_pg() {
  if [[ $(id -u) == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port() {
  if [[ -n "${CLUSTER_STORE_PORT:-}" ]]; then
    echo "$CLUSTER_STORE_PORT"
  elif [[ "$CLUSTER_NAME" == cost-analysis ]]; then
    echo 55432
  elif [[ -f "$dir/port" ]]; then
    cat "$dir/port"
  else
    local p
    for ((p = 55433 + $(printf '%s' "$root/$CLUSTER_NAME" | cksum | cut -d' ' -f1) % 2000; ; p++)); do
      ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || break
    done
    mkdir -p "$dir"
    echo "$p" >"$dir/port"
    echo "$p"
  fi
}

host_address() { CLUSTER_NAME=$CLUSTER_NAME "$root/hack/node.sh" host-address 2>/dev/null; }

running() {
  local bin
  bin=$(pg_bin) || return 1
  [[ -f "$data/postmaster.pid" ]] && as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

psql_admin() {
  local bin
  bin=$(pg_bin)
  as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -p "$(port)" -U postgres -d postgres "$@"
}

cmd_up() {
  ensure_installed
  local bin p host listen
  bin=$(pg_bin)
  p=$(port)
  host=$(host_address || true)
  listen=127.0.0.1
  [[ -z "$host" ]] || listen="127.0.0.1,$host"
  if running; then
    # Started before the node came up? Then it does not listen where pods are.
    if [[ -n "$host" ]] && ! ss -Hltn "src $host and sport = :$p" 2>/dev/null | grep -q .; then
      log "restarting PostgreSQL to listen on $host too"
      as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    else
      log "PostgreSQL of cluster $CLUSTER_NAME already runs on $listen:$p"
      return 0
    fi
  fi
  mkdir -p "$dir" "$sockdir"
  if [[ $(id -u) == 0 ]]; then
    # The postgres user must reach its directory: every directory above it must be
    # searchable by others.
    local d=$dir
    while [[ "$d" != / ]]; do
      d=$(dirname "$d")
      if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
        chmod o+x "$d" || die "the postgres user cannot reach $dir ($d is not searchable)"
      fi
    done
    chown postgres:postgres "$dir" "$sockdir"
  fi
  chmod 0700 "$dir"
  if [[ ! -s "$dir/password" ]]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$dir/password")
  fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    log "initializing $data"
    as_pg "$bin/initdb" -D "$data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
      --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  # Who may log in: the postgres user on the socket; cost_analysis by password from
  # this host and from the node's pod subnet.
  {
    echo "local all postgres peer"
    echo "host cost_analysis cost_analysis 127.0.0.1/32 scram-sha-256"
    [[ -z "$host" ]] || echo "host cost_analysis cost_analysis ${host%.*}.0/24 scram-sha-256"
  } | as_pg tee "$data/pg_hba.conf" >/dev/null
  # A crash leaves postmaster.pid behind; PostgreSQL itself ignores one whose process
  # is gone, but not one whose pid was reused: remove it when no postgres holds it.
  if [[ -f "$data/postmaster.pid" ]]; then
    local pid
    pid=$(head -n 1 "$data/postmaster.pid")
    if ! [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == postgres ]]; then
      log "removing the stale postmaster.pid of pid $pid"
      rm -f "$data/postmaster.pid"
    fi
  fi
  as_pg "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start \
    -o "-c listen_addresses=$listen -c port=$p -c unix_socket_directories=$sockdir -c password_encryption=scram-sha-256" \
    >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; die "PostgreSQL did not start (log: $dir/postgres.log)"; }
  local pw
  pw=$(cat "$dir/password")
  psql_admin <<SQL
SELECT format('CREATE ROLE cost_analysis LOGIN PASSWORD %L', '$pw')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cost_analysis')\gexec
ALTER ROLE cost_analysis LOGIN PASSWORD '$pw';
SELECT 'CREATE DATABASE cost_analysis OWNER cost_analysis'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'cost_analysis')\gexec
SQL
  log "PostgreSQL of cluster $CLUSTER_NAME listens on $listen:$p (data $data)"
}

cmd_down() {
  [[ -d "$dir" ]] || return 0
  local bin
  if bin=$(pg_bin) && [[ -f "$data/postmaster.pid" ]]; then
    if ! as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1; then
      local pid
      pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
      if [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == postgres ]]; then
        log "PostgreSQL did not stop: killing pid $pid"
        kill -KILL "$pid" 2>/dev/null || true
        pkill -KILL -P "$pid" 2>/dev/null || true
      fi
    fi
  fi
  rm -rf "$dir"
  log "PostgreSQL of cluster $CLUSTER_NAME stopped and removed"
}

cmd_dsn() {
  [[ -s "$dir/password" ]] || die "no store for cluster $CLUSTER_NAME: hack/postgres.sh up first"
  local host
  host=$(host_address || true)
  echo "postgres://cost_analysis:$(cat "$dir/password")@${host:-127.0.0.1}:$(port)/cost_analysis?sslmode=disable"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  dsn) cmd_dsn ;;
  status) running ;;
  ensure-installed) ensure_installed ;;
  *)
    echo "usage: $0 up|down|dsn|status|ensure-installed" >&2
    exit 2
    ;;
esac
