#!/usr/bin/env bash
# Starts the local MariaDB and Redis when they are installed but not answering (a CI machine reused between
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
exit 0
