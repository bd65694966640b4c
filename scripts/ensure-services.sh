#!/usr/bin/env bash
# Starts the local MariaDB, Redis and PostgreSQL when they are installed but not answering (a CI machine reused between
# jobs may have them stopped). Does nothing when they already answer; never installs or reconfigures them.
set -uo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  for _ in $(seq 1 30); do answers "$1" && return 0; sleep 1; done
  echo "ensure-services: $2 did not come up on 127.0.0.1:$1" >&2
  return 1
}

if ! answers 3306 && command -v mariadbd >/dev/null; then
  echo "ensure-services: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec "$(command -v mariadbd)"
  wait_for 3306 MariaDB
fi
if ! answers 6379 && command -v redis-server >/dev/null; then
  echo "ensure-services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for 6379 Redis
fi
if ! answers 5432 && command -v pg_ctlcluster >/dev/null; then
  echo "ensure-services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  wait_for 5432 PostgreSQL
fi
# PostgreSQL stands in for Redshift; the default AFLUENTE_WAREHOUSE_URL names the database `afluente`.
if command -v psql >/dev/null &&
  [[ "$(psql -h 127.0.0.1 -U postgres -Atc "select 1 from pg_database where datname = 'afluente'" postgres 2>/dev/null)" != 1 ]]; then
  psql -h 127.0.0.1 -U postgres -qc 'create database afluente' postgres >/dev/null
fi
exit 0
