#!/usr/bin/env bash
# Starts the services the test suite needs when they are not already running: PostgreSQL
# (127.0.0.1:5432, database "test", trust auth), Redis (127.0.0.1:6379) and RabbitMQ
# (127.0.0.1:5672, guest/guest; the tests create their own virtual hosts with rabbitmqctl).
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! listening 6379; then
  echo "Starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi

if ! listening 5432; then
  if [[ -n "$(ls /etc/postgresql 2>/dev/null)" ]]; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "Starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
  else
    echo "PostgreSQL is not installed: run 'make services' as root, or set TEST_DATABASE_URL" >&2
    exit 1
  fi
fi

if ! listening 5672; then
  echo "Starting rabbitmq-server on 127.0.0.1:5672"
  rabbitmq-server -detached
fi

for _ in $(seq 1 50); do listening 5432 && listening 6379 && break; sleep 0.2; done
# RabbitMQ takes a few seconds to boot (longer on a first start, which creates its database).
for _ in $(seq 1 300); do listening 5672 && break; sleep 0.2; done
listening 5672 || { echo "rabbitmq-server did not start; see /var/log/rabbitmq" >&2; exit 1; }
if command -v psql >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]] && id postgres >/dev/null 2>&1; then
  # The suite connects as "postgres" without a password to database "test".
  su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='test'\"" | grep -q 1 \
    || su postgres -c "createdb test"
fi
