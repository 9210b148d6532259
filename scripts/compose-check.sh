#!/usr/bin/env bash
# Brings the docker compose stack up for real and proves it through docker-compose:
#   1. a two-stage run submitted from `control` completes with a point every 50 iterations;
#   2. SIGKILL of the worker container training a stage: the other replica finishes it, the curve
#      has no gap or duplicate, the snapshots equal those of run 1 (same settings) byte for byte;
#   3. `docker-compose restart redis` mid-stage: the run completes, nothing lost or doubled;
#   4. a client cut off the network mid-transaction holding a stage's row lock is dropped by
#      PostgreSQL within seconds; the worker container training a stage is cut off the network
#      (not killed) mid-stage: the other replica takes the stage over once its lease lapses; the
#      cut-off one, connected again, writes nothing more for that stage (a trigger records each
#      writer's address); the run equals run 1 byte for byte;
#   5. the `tests` service runs the queue and fault tests against the stack's Redis and PostgreSQL;
#   6. `flower` (profile monitor) answers;
#   7. the dashboard `ui` (profile ui) lists the runs through its API and serves /metrics.
# Where no Docker engine answers it starts dockerd (installing Debian's docker.io first when root
# on a Debian-like host); where the official images can't be pulled it builds stand-ins
# (scripts/compose-standins.sh). MNIST comes from $GRADQ_DATA_DIR, copied into the data volume.
# Prints each step with its time; exits non-zero on the first failure; always removes what it
# started: the stack's containers, volumes and network (its own project, `gradq-check`), and a
# dockerd it started, with the bridge, iptables rules and ip_forward that dockerd set.
#   GRADQ_DATA_DIR=/path/to/mnist bash scripts/compose-check.sh
#   GRADQ_CHECK_TESTS="tests/system/test_faults.py"   # the tests step's pytest arguments
#   GRADQ_CHECK_STANDINS=auto|1|0               # build stand-ins: when pulls fail | always | never
#   GRADQ_CHECK_SKIP="kill_run stack_tests"    # skip steps by function name (while developing)
set -euo pipefail
cd "$(dirname "$0")/.."

export COMPOSE_PROJECT_NAME=${GRADQ_CHECK_PROJECT:-gradq-check}
export GRADQ_CONCURRENCY=${GRADQ_CONCURRENCY:-1} # 2 replicas x 1 process x 1 BLAS thread
export GRADQ_THREADS=${GRADQ_THREADS:-1}
DATA_DIR=${GRADQ_DATA_DIR:-}
TESTS=${GRADQ_CHECK_TESTS:-tests/system/test_cli_queue.py tests/system/test_faults.py tests/system/test_worker.py}
STANDINS=${GRADQ_CHECK_STANDINS:-auto}
STATE=$(mktemp -d /tmp/gradq-compose-check.XXXXXX)
COMPOSE=(docker-compose --profile tools --profile test --profile monitor --profile ui)
T0=$(date +%s)
DOCKERD_PID=""
STACK_UP=0

say() { printf '[compose-check %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
fail() {
  say "FAILED: $*"
  exit 1
}

# step NAME FUNCTION: run one check, print its duration, stop everything on failure.
step() {
  local name=$1 start
  shift
  case " ${GRADQ_CHECK_SKIP:-} " in *" $1 "*) say "skipped: $name" && return 0 ;; esac
  start=$(date +%s)
  say "step: $name"
  if ! "$@"; then
    fail "$name (after $(($(date +%s) - start)) s)"
  fi
  say "ok:   $name ($(($(date +%s) - start)) s)"
}

control() { "${COMPOSE[@]}" run --rm -T control "$@" 2>"$STATE/control.err"; }
checker() { control python - "$@" <scripts/compose_check.py || { cat "$STATE/control.err" >&2; false; }; }

net_state() {
  # What dockerd changes on the host: links, iptables (filter, nat), nft tables, ip_forward.
  ip -o link show | awk -F': ' '{print "link " $2}' | sed 's/@.*//'
  for table in filter nat; do iptables -t "$table" -S 2>/dev/null | sed "s/^/$table /"; done
  nft list tables 2>/dev/null | sed 's/^/nft /'
  echo "ip_forward $(cat /proc/sys/net/ipv4/ip_forward)"
}

start_engine() {
  if docker info >/dev/null 2>&1; then
    say "a Docker engine answers; using it"
  else
    if ! command -v dockerd >/dev/null; then
      [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null ||
        fail "no Docker engine: install Docker (or run as root on Debian to install docker.io)"
      say "installing Debian's docker.io"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq docker.io iptables >/dev/null
    fi
    [ "$(id -u)" = 0 ] || fail "no Docker engine answers and starting dockerd needs root"
    net_state >"$STATE/net.before"
    [ -e /var/run/docker ] || touch "$STATE/no-exec-root" # dockerd's runtime directory
    setsid dockerd --pidfile "$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { tail -20 "$STATE/dockerd.log"; fail "dockerd did not start"; }
    say "started dockerd (pid $DOCKERD_PID)"
  fi
  if ! command -v docker-compose >/dev/null; then
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || fail "docker-compose is not installed"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq docker-compose >/dev/null
  fi
}

stop_engine() {
  # Only a dockerd this script started: stop it, then undo what it did to the host's network.
  [ -n "$DOCKERD_PID" ] || return 0
  kill -TERM "$DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$DOCKERD_PID" 2>/dev/null && kill -KILL "$DOCKERD_PID"
  net_state >"$STATE/net.dockerd"
  local kind table rest
  # rules first (-A becomes -D), then the chains dockerd created, then links, nft tables
  grep -vxFf "$STATE/net.before" "$STATE/net.dockerd" | while read -r kind rest; do
    case $kind in
      filter | nat)
        case $rest in
          "-A "*) eval "iptables -t $kind -D ${rest#-A }" || true ;;
        esac
        ;;
    esac
  done
  grep -vxFf "$STATE/net.before" "$STATE/net.dockerd" | while read -r kind rest; do
    case $kind in
      filter | nat)
        case $rest in
          "-N "*) iptables -t "$kind" -F "${rest#-N }" && iptables -t "$kind" -X "${rest#-N }" ;;
          "-P "*) read -r chain _ <<<"${rest#-P }" &&
            iptables -t "$kind" -P "$chain" "$(grep -E "^$kind -P $chain " "$STATE/net.before" |
              awk '{print $4}')" ;;
        esac
        ;;
      link) ip link delete "$rest" 2>/dev/null || true ;;
    esac
  done
  grep -vxFf "$STATE/net.before" "$STATE/net.dockerd" | while read -r kind rest; do
    case $kind in
      nft) table=${rest#table } && nft delete table $table 2>/dev/null || true ;;
      ip_forward) grep '^ip_forward ' "$STATE/net.before" | awk '{print $2}' \
        >/proc/sys/net/ipv4/ip_forward ;;
    esac
  done
  [ -e "$STATE/no-exec-root" ] && rm -rf /var/run/docker
  net_state >"$STATE/net.after"
  if ! diff "$STATE/net.before" "$STATE/net.after" >"$STATE/net.diff"; then
    say "host network differs from before dockerd:"
    cat "$STATE/net.diff"
    return 1
  fi
  say "stopped dockerd; links, iptables and ip_forward as before"
}

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ "$STACK_UP" = 1 ]; then
    "${COMPOSE[@]}" down -v --remove-orphans --timeout 10 >"$STATE/down.log" 2>&1 ||
      { cat "$STATE/down.log"; rc=1; }
    say "removed the stack's containers, volumes and network"
  fi
  stop_engine || rc=1
  rm -rf "$STATE"
  say "$([ "$rc" = 0 ] && echo "all checks passed" || echo "FAILED (exit $rc)") in $(($(date +%s) - T0)) s"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

images() {
  # Official images if they are here or can be pulled; stand-ins otherwise (or when asked).
  if [ "$STANDINS" = auto ]; then
    STANDINS=0
    for image in python:3.11-slim redis:7-alpine postgres:16-alpine; do
      docker image inspect "$image" >/dev/null 2>&1 || docker pull -q "$image" >/dev/null 2>&1 ||
        STANDINS=1
    done
  fi
  if [ "$STANDINS" = 1 ]; then
    say "official images unavailable: using stand-ins built from Debian packages"
    eval "$(bash scripts/compose-standins.sh)"
  fi
}

build() {
  "${COMPOSE[@]}" build worker tests >"$STATE/build.log" 2>&1 || { tail -30 "$STATE/build.log"; false; }
}

workers_answering() {
  local status n
  for _ in $(seq "$2"); do
    status=$(control gradq status --json || true)
    n=$(python3 -c 'import json, sys; print(len(json.load(sys.stdin)["workers"]))' \
      <<<"$status" 2>/dev/null) || n=0
    [ "$n" = "$1" ] && { echo "$n workers answer"; return 0; }
    sleep 1
  done
  echo "$n of $1 workers answer"
  false
}

up() {
  STACK_UP=1
  "${COMPOSE[@]}" up -d redis postgres worker >"$STATE/up.log" 2>&1 || { cat "$STATE/up.log"; false; }
  # healthy Redis and PostgreSQL (depends_on waited for them) and both replicas answering
  workers_answering 2 120 || { "${COMPOSE[@]}" ps; false; }
}

load_data() {
  "${COMPOSE[@]}" run --rm -T -v "$(cd "$DATA_DIR" && pwd):/src:ro" control \
    sh -c 'cp /src/*-ubyte.gz /data/mnist/ && chmod 644 /data/mnist/*' 2>"$STATE/control.err" &&
    control gradq data info | grep -E '^(source|train|test) '
}

reference_run() {
  REF=$(checker submit reference) || return 1
  checker finish "$REF" && checker check "$REF"
}

# the replica whose hostname (container id prefix) is $1
container_of() { "${COMPOSE[@]}" ps -q worker | grep "^$1"; }

kill_run() {
  local run out stage host victim killed
  run=$(checker submit killed) || return 1
  out=$(checker running "$run" 100) || return 1
  read -r stage host <<<"$out"
  victim=$(container_of "$host") || return 1
  docker kill --signal KILL "$victim" >/dev/null || return 1
  killed=$(date +%s)
  echo "stage $stage past 100 its on $host: SIGKILLed its worker container"
  out=$(checker running "$run" 0 "$host") || return 1
  echo "stage $stage running again on the other replica, ${out#* }, $(($(date +%s) - killed)) s later"
  checker finish "$run" && checker check "$run" "$REF" || return 1
  "${COMPOSE[@]}" up -d worker >/dev/null 2>&1 # the killed replica back, for what follows
}

redis_restart_run() {
  local run out
  run=$(checker submit redis-restart) || return 1
  out=$(checker running "$run" 100) || return 1
  "${COMPOSE[@]}" restart redis >/dev/null 2>&1 || return 1
  echo "stage ${out% *} past 100 its on ${out#* }: redis restarted"
  checker finish "$run" && checker check "$run" "$REF"
}

addresses() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1"; }
network_of() { docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}' "$1"; }

cut_mid_transaction() {
  # A gradq client (gradq's engine settings) locks run $REF's first stage row in a transaction
  # and is cut off the network: PostgreSQL must drop it and free the row within seconds (TCP
  # alone takes hours), or a worker cut off mid-write would keep its stage from any other.
  local holder=gradq-check-holder net pid waited
  net=$(network_of "$("${COMPOSE[@]}" ps -q worker | head -n1)")
  "${COMPOSE[@]}" run --rm -T --name "$holder" control python - hold "$REF" \
    <scripts/compose_check.py >"$STATE/hold.out" 2>"$STATE/hold.err" &
  pid=$!
  for _ in $(seq 60); do grep -q locked "$STATE/hold.out" && break; sleep 1; done
  grep -q locked "$STATE/hold.out" || { cat "$STATE/hold.err"; kill "$pid"; return 1; }
  docker network disconnect "$net" "$holder" || return 1
  waited=$(checker free "$REF") || { docker rm -f "$holder" >/dev/null; return 1; }
  docker rm -f "$holder" >/dev/null 2>&1
  wait "$pid" 2>/dev/null
  echo "a client locking run $REF's stage row, cut off mid-transaction: the row was free $waited s later"
  [ "$waited" -le 60 ] || { echo "too late: a cut-off worker would keep its stage that long"; false; }
}

partition_run() {
  local run out stage host victim net ips cut cut_s moved back
  cut_mid_transaction || return 1
  checker audit || return 1
  run=$(checker submit partitioned) || return 1
  out=$(checker running "$run" 100) || return 1
  read -r stage host <<<"$out"
  victim=$(container_of "$host") || return 1
  net=$(network_of "$victim")
  ips=$(addresses "$victim")
  docker network disconnect "$net" "$victim" || return 1
  cut_s=$(date +%s)
  cut=$(checker now) || return 1
  echo "stage $stage past 100 its on $host ($ips): cut it off $net"
  out=$(checker running "$run" 0 "$host") || return 1
  moved=$(($(date +%s) - cut_s))
  echo "stage $stage running again on the other replica, ${out#* }, $moved s after the cut" \
    "(lease grace ${GRADQ_LEASE_GRACE:-15} s, reaper every ${GRADQ_REAPER_SECONDS:-5} s)"
  # a takeover needs the lease to lapse and a reaper pass: well past that, the stage is stuck
  [ "$moved" -le $((3 * (${GRADQ_LEASE_GRACE:-15} + ${GRADQ_REAPER_SECONDS:-5}))) ] ||
    { echo "the takeover took too long"; return 1; }
  docker network connect "$net" "$victim" || return 1
  back=$(date +%s)
  ips="$ips $(addresses "$victim")"
  workers_answering 2 120 || return 1
  echo "the cut-off replica answers again, $(($(date +%s) - back)) s after it was connected"
  checker finish "$run" && checker check "$run" "$REF" || return 1
  sleep 5 # a few heartbeats more for a stale write to show
  # shellcheck disable=SC2086 # ips is a list of addresses
  checker written "$run" "$stage" "$cut" $ips || return 1
  echo "what the cut-off replica logged of stage $stage since the cut:"
  { docker logs --since "$cut_s" "$victim" 2>&1 | grep -iE "stage $stage\b|lease" || true; } |
    tail -n 4 | cut -c1-160
}

stack_tests() {
  # shellcheck disable=SC2086 # TESTS is a list of pytest arguments
  "${COMPOSE[@]}" run --rm -T tests python -m pytest -q -x -p no:cacheprovider $TESTS \
    2>"$STATE/tests.err" | tail -5
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || cat "$STATE/tests.err" >&2
  return "$rc"
}

flower() {
  "${COMPOSE[@]}" up -d flower >"$STATE/flower.log" 2>&1 || { cat "$STATE/flower.log"; return 1; }
  # its health endpoint, then its workers page naming a worker of the stack
  local get='import sys, urllib.request as u; print(u.urlopen(sys.argv[1]).read().decode())'
  local health="" workers=""
  for _ in $(seq 60); do
    [ -n "$health" ] || health=$("${COMPOSE[@]}" exec -T flower python -c "$get" \
      http://127.0.0.1:5555/healthcheck 2>/dev/null | grep -x OK)
    [ -z "$health" ] || workers=$("${COMPOSE[@]}" exec -T flower python -c "$get" \
      http://127.0.0.1:5555/workers 2>/dev/null | grep -o 'celery@[0-9a-f]*' | sort -u | xargs)
    [ -n "$workers" ] && { echo "flower: /healthcheck OK, /workers lists $workers"; return 0; }
    sleep 1
  done
  "${COMPOSE[@]}" logs --tail 20 flower
  false
}

ui() {
  "${COMPOSE[@]}" up -d ui >"$STATE/ui.log" 2>&1 || { cat "$STATE/ui.log"; return 1; }
  # the runs the checks made, through its JSON API, and its Prometheus metrics: bound beyond
  # loopback in its container, it answers reads only with the token it printed at start
  local get='import sys, urllib.request as u; print(u.urlopen(sys.argv[1]).read().decode())'
  local code='import sys, urllib.request as u, urllib.error as e
try: u.urlopen(sys.argv[1]); print(200)
except e.HTTPError as x: print(x.code)'
  local runs="" metrics="" token="" refused=""
  for _ in $(seq 60); do
    [ -n "$token" ] || token=$("${COMPOSE[@]}" logs ui 2>/dev/null | grep -o 'token=[A-Za-z0-9_-]*' |
      tail -n1 | cut -d= -f2)
    [ -n "$token" ] || { sleep 1; continue; }
    [ -n "$refused" ] || refused=$("${COMPOSE[@]}" exec -T ui python -c "$code" \
      http://127.0.0.1:8765/api/runs 2>/dev/null)
    [ -n "$runs" ] || runs=$("${COMPOSE[@]}" exec -T ui python -c "$get" \
      "http://127.0.0.1:8765/api/runs?token=$token" 2>/dev/null | grep -o '"id":' | wc -l |
      grep -v '^0$')
    [ -z "$runs" ] || metrics=$("${COMPOSE[@]}" exec -T ui python -c "$get" \
      "http://127.0.0.1:8765/metrics?token=$token" 2>/dev/null | grep -c '^gradq_')
    if [ -n "$metrics" ] && [ "$metrics" != 0 ]; then
      [ "$refused" = 403 ] || { echo "ui: /api/runs without the token answered $refused, not 403"; return 1; }
      echo "ui: without the token 403; with it /api/runs lists $runs runs, /metrics has $metrics gradq samples"
      return 0
    fi
    sleep 1
  done
  "${COMPOSE[@]}" logs --tail 20 ui
  false
}

have_data() {
  local file
  for file in train-images-idx3 train-labels-idx1 t10k-images-idx3 t10k-labels-idx1; do
    [ -f "$DATA_DIR/$file-ubyte.gz" ] ||
      { echo "GRADQ_DATA_DIR must hold MNIST's four -ubyte.gz files (got '$DATA_DIR')"; return 1; }
  done
}

step "MNIST in \$GRADQ_DATA_DIR" have_data
step "Docker engine" start_engine
step "images" images
step "build the gradq images" build
step "up: redis, postgres, 2 workers, both answering" up
step "MNIST into the data volume from $DATA_DIR" load_data
step "1. two-stage run from control, a point every 50 its" reference_run
step "2. SIGKILL of the training worker container" kill_run
step "3. docker-compose restart redis mid-stage" redis_restart_run
step "4. the training worker container cut off the network mid-stage" partition_run
step "5. tests service: $TESTS" stack_tests
step "6. flower (profile monitor) answers" flower
step "7. the dashboard (profile ui) lists the runs and exports metrics" ui
