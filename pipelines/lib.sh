# pipelines/lib.sh — what every pipeline script uses. Sourced by run.sh; not run on its own.
#
#   stage NAME ARGS…          run bin/NAME in the foreground, logged and timed; stops the
#                             pipeline on failure. Stages are idempotent: one that has nothing
#                             left to do returns at once, so a rerun (an ablation that changes
#                             one argument) redoes only what differs.
#   service_start NAME ARGS…  start bin/NAME in the background on ipc://$TURBO_WORKSPACE/sock/NAME.ipc
#                             under a supervisor, and wait until it answers ping
#                             (TURBO_READY_TIMEOUT seconds, default 60). A service that dies before
#                             it is ready stops the pipeline, naming it and showing its log; one
#                             that dies later is named and restarted (TURBO_SERVICE_RESTARTS times,
#                             default 3) while its clients retry.
#   service_as ALIAS NAME ARGS…  the same under another name (two reward services from one binary)
#   services_check            fail, naming it, if a service died for good
#   services_stop             stop every service this pipeline started: TERM, then KILL after
#                             TURBO_STOP_GRACE seconds (default 10); also on exit and Ctrl-C
#   say TEXT                  one line of pipeline progress on stderr

: "${TURBO_WORKSPACE:=runs/default}"
: "${TURBO_BIN:=bin}"
: "${TURBO_READY_TIMEOUT:=60}"
: "${TURBO_SERVICE_RESTARTS:=3}"
: "${TURBO_STOP_GRACE:=10}"
export TURBO_WORKSPACE
TURBO_SERVICES=""       # names of the services this shell started
TURBO_SUPERVISORS=""    # pids of their supervisors
TURBO_PIPELINE_STEPS=""

say() { printf 'run.sh: %s\n' "$*" >&2; }

service_endpoint() { echo "ipc://$TURBO_WORKSPACE/sock/$1.ipc"; }
service_state() { echo "$TURBO_WORKSPACE/sock/$1"; } # prefix of NAME.pid, .ready, .dead, .stop

log_tail() {
  [ -s "$1" ] && tail -n "${2:-8}" "$1" | sed 's/^/    | /' >&2
}

stage() {
  name=$1; shift
  exe="$TURBO_BIN/$name"
  [ -x "$exe" ] || { say "no stage '$name' ($exe is missing; run make)"; exit 1; }
  services_check
  say "stage $name $*"
  t0=$(date +%s)
  "$exe" --workspace "$TURBO_WORKSPACE" "$@"
  rc=$?
  t1=$(date +%s)
  if [ $rc -ne 0 ]; then
    say "stage $name failed (exit $rc) after $((t1 - t0)) s"
    services_check
    exit $rc
  fi
  TURBO_PIPELINE_STEPS="$TURBO_PIPELINE_STEPS
  $name ($((t1 - t0)) s)"
}

# The supervisor: runs the service, and restarts it when it dies after having been ready.
# Runs in a background subshell; the service's pid is in NAME.pid.
service_supervise() {
  alias_=$1; exe_=$2; shift 2
  st=$(service_state "$alias_")
  log="$TURBO_WORKSPACE/logs/$alias_.log"
  n=0
  child=""
  trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM
  while :; do
    "$exe_" --workspace "$TURBO_WORKSPACE" --endpoint "$(service_endpoint "$alias_")" "$@" \
      2>>"$log" &
    child=$!
    echo "$child" > "$st.pid"
    wait "$child"; rc=$?
    # wait returns early when the TERM trap ran: wait for the child itself
    while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
    [ -e "$st.stop" ] && exit 0
    if [ ! -e "$st.ready" ]; then
      echo "$rc" > "$st.dead"
      exit 1
    fi
    n=$((n + 1))
    say "service $alias_ (pid $child) died (exit $rc); log: $log"
    log_tail "$log" 4
    if [ $n -gt "$TURBO_SERVICE_RESTARTS" ]; then
      say "service $alias_: giving up after $TURBO_SERVICE_RESTARTS restarts"
      echo "$rc" > "$st.dead"
      exit 1
    fi
    say "service $alias_: restart $n of $TURBO_SERVICE_RESTARTS"
    rm -f "$st.ready"
    sleep 1
    # ready again once it answers ping; until then clients wait or retry
    ( "$TURBO_BIN/echo" --ping "$(service_endpoint "$alias_")" --timeout "$TURBO_READY_TIMEOUT" \
        >/dev/null 2>&1 && touch "$st.ready" ) &
  done
}

service_as() {
  alias_=$1; name=$2; shift 2
  exe="$TURBO_BIN/$name"
  [ -x "$exe" ] || { say "no service '$name' ($exe is missing; run make)"; exit 1; }
  mkdir -p "$TURBO_WORKSPACE/sock" "$TURBO_WORKSPACE/logs"
  st=$(service_state "$alias_")
  rm -f "$st.pid" "$st.ready" "$st.dead" "$st.stop"
  ep=$(service_endpoint "$alias_")
  service_supervise "$alias_" "$exe" "$@" &
  TURBO_SUPERVISORS="$TURBO_SUPERVISORS $!"
  TURBO_SERVICES="$TURBO_SERVICES $alias_"
  say "service $alias_ starting on $ep ($name $*)"
  waited=0
  while :; do
    if [ -e "$st.dead" ]; then
      say "service $alias_ exited during start-up (exit $(cat "$st.dead")); log: $TURBO_WORKSPACE/logs/$alias_.log"
      log_tail "$TURBO_WORKSPACE/logs/$alias_.log"
      exit 1
    fi
    if "$TURBO_BIN/echo" --ping "$ep" --timeout 1 >/dev/null 2>&1; then
      touch "$st.ready"
      say "service $alias_ ready (pid $(cat "$st.pid" 2>/dev/null))"
      return 0
    fi
    waited=$((waited + 1))
    if [ $waited -ge "$TURBO_READY_TIMEOUT" ]; then
      say "service $alias_ did not answer ping in ${TURBO_READY_TIMEOUT}s; log: $TURBO_WORKSPACE/logs/$alias_.log"
      log_tail "$TURBO_WORKSPACE/logs/$alias_.log"
      exit 1
    fi
  done
}

service_start() {
  service_as "$1" "$@"
}

services_check() {
  for s in $TURBO_SERVICES; do
    st=$(service_state "$s")
    if [ -e "$st.dead" ]; then
      say "service $s is down for good (last exit $(cat "$st.dead")); log: $TURBO_WORKSPACE/logs/$s.log"
      exit 1
    fi
  done
}

services_stop() {
  [ -n "$TURBO_SERVICES" ] || return 0
  pids=""
  for s in $TURBO_SERVICES; do
    st=$(service_state "$s")
    touch "$st.stop"
    p=$(cat "$st.pid" 2>/dev/null)
    [ -n "$p" ] && kill -TERM "$p" 2>/dev/null && pids="$pids $p"
  done
  left=$TURBO_STOP_GRACE
  while [ "$left" -gt 0 ]; do
    alive=""
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -z "$alive" ] && break
    sleep 1
    left=$((left - 1))
  done
  for p in $pids; do
    if kill -0 "$p" 2>/dev/null; then
      say "service pid $p ignored TERM for ${TURBO_STOP_GRACE}s: KILL"
      kill -KILL "$p" 2>/dev/null
    fi
  done
  for p in $TURBO_SUPERVISORS; do wait "$p" 2>/dev/null; done
  for s in $TURBO_SERVICES; do
    st=$(service_state "$s")
    rm -f "$st.pid" "$st.ready" "$st.stop" "$TURBO_WORKSPACE/sock/$s.ipc"
  done
  TURBO_SERVICES=""
  TURBO_SUPERVISORS=""
}

pipeline_summary() {
  say "done. Steps:$TURBO_PIPELINE_STEPS"
}
