#!/usr/bin/env bash
# Builds local stand-ins for the three official images the stack uses (python:3.11-slim, redis,
# postgres) from Debian bookworm packages, for a machine whose Docker engine reaches no registry
# but does reach Debian's archive (and PyPI, for the gradq image itself). Prints the variables
# that point docker-compose at them. Images already built are reused: debootstrap runs once, and
# the three small builds on top hit the layer cache.
#   eval "$(bash scripts/compose-standins.sh)"   # then docker-compose as usual
set -euo pipefail
cd "$(dirname "$0")/standins"
BASE=gradq-standin/debian:bookworm

log() { echo "[standins] $*" >&2; }

mirror() {
  # GRADQ_DEBIAN_MIRROR, else the host's own Debian mirror (deb822 or one-line sources); no
  # address is guessed: a host that reaches none of its own would not reach a guessed one.
  local uri
  uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
    2>/dev/null | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)
  uri=${GRADQ_DEBIAN_MIRROR:-$uri}
  if [ -z "$uri" ]; then
    echo "[standins] no Debian mirror: set GRADQ_DEBIAN_MIRROR or add one to /etc/apt/sources.list(.d)" >&2
    return 1
  fi
  echo "$uri"
}

build_base() {
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  local root url
  root=$(mktemp -d /tmp/gradq-standin-rootfs.XXXXXX)
  trap 'rm -rf "$root"' RETURN
  url=$(mirror) || exit 1
  log "debootstrap bookworm from $url"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$url" >/dev/null
  # The host's CA certificates: a TLS-intercepting proxy between here and PyPI stays trusted.
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$root" update-ca-certificates >/dev/null 2>&1
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"  # packages start no services
  chmod +x "$root/usr/sbin/policy-rc.d"
  echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/90gradq-no-recommends"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$BASE" >/dev/null
}

if docker image inspect "$BASE" >/dev/null 2>&1; then
  log "$BASE exists"
else
  build_base
fi
for name in python:3.11 redis:7 postgres:15; do
  log "building gradq-standin/$name"
  log=$(mktemp)
  docker build -f "${name%%:*}.Dockerfile" --build-arg "DEBIAN_IMAGE=$BASE" \
    -t "gradq-standin/$name" . >"$log" 2>&1 || { tail -30 "$log" >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
done
echo "export GRADQ_PYTHON_IMAGE=gradq-standin/python:3.11"
echo "export GRADQ_REDIS_IMAGE=gradq-standin/redis:7"
echo "export GRADQ_POSTGRES_IMAGE=gradq-standin/postgres:15"
