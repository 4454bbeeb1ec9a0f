#!/usr/bin/env bash
# Installs the system programs videofleet needs (Debian/Ubuntu): ffmpeg, redis-server, and, with
# --for-tests, PostgreSQL, RabbitMQ, headless Chromium and Node (npm) for the test suite. As root it installs what is missing; otherwise it
# prints the one command to run and fails.
set -euo pipefail

want=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || want+=(ffmpeg)
command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
if [[ "${1:-}" == "--for-tests" ]]; then
  command -v pg_ctlcluster >/dev/null 2>&1 || want+=(postgresql)
  # The broker-facing tests run on RabbitMQ too (docs/brokers.md).
  command -v rabbitmq-server >/dev/null 2>&1 || want+=(rabbitmq-server)
  command -v chromium >/dev/null 2>&1 || want+=(chromium)
  # systemd-analyze verifies deploy/systemd/ in the tests.
  command -v systemd-analyze >/dev/null 2>&1 || want+=(systemd)
  # Node runs Miniflare (workerd) and wrangler for tests/cloudflare (npm ci by make services).
  command -v node >/dev/null 2>&1 || want+=(nodejs)
  command -v npm >/dev/null 2>&1 || want+=(npm)
fi
[[ ${#want[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "videofleet needs: ${want[*]}. Install them with: sudo apt-get install -y ${want[*]}" >&2
  exit 1
fi
echo "Installing ${want[*]} from Debian's packages..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
