# pipelines/lib.sh — what every pipeline script uses. Sourced by run.sh; not run on its own.
#
#   stage NAME ARGS…          run bin/NAME in the foreground, logged; stops the pipeline on failure
#   service_start NAME ARGS…  start bin/NAME in the background on ipc://$TURBO_WORKSPACE/sock/NAME.ipc
#                             and wait until it answers ping (TURBO_READY_TIMEOUT seconds, default 30)
#   services_stop             stop every service this pipeline started (also on exit and Ctrl-C)
#   say TEXT                  one line of pipeline progress on stderr

: "${TURBO_WORKSPACE:=runs/default}"
: "${TURBO_BIN:=bin}"
: "${TURBO_READY_TIMEOUT:=30}"
export TURBO_WORKSPACE
TURBO_SERVICE_PIDS=""
TURBO_PIPELINE_STEPS=""

say() { printf 'run.sh: %s\n' "$*" >&2; }

stage() {
  name=$1; shift
  exe="$TURBO_BIN/$name"
  [ -x "$exe" ] || { say "no stage '$name' ($exe is missing; run make)"; exit 1; }
  say "stage $name $*"
  t0=$(date +%s)
  "$exe" --workspace "$TURBO_WORKSPACE" "$@"
  rc=$?
  t1=$(date +%s)
  if [ $rc -ne 0 ]; then
    say "stage $name failed (exit $rc) after $((t1 - t0)) s"
    exit $rc
  fi
  TURBO_PIPELINE_STEPS="$TURBO_PIPELINE_STEPS
  $name ($((t1 - t0)) s)"
}

service_endpoint() { echo "ipc://$TURBO_WORKSPACE/sock/$1.ipc"; }

service_start() {
  name=$1; shift
  exe="$TURBO_BIN/$name"
  [ -x "$exe" ] || { say "no service '$name' ($exe is missing; run make)"; exit 1; }
  mkdir -p "$TURBO_WORKSPACE/sock" "$TURBO_WORKSPACE/logs"
  ep=$(service_endpoint "$name")
  "$exe" --workspace "$TURBO_WORKSPACE" --endpoint "$ep" "$@" \
    2>>"$TURBO_WORKSPACE/logs/$name.log" &
  pid=$!
  TURBO_SERVICE_PIDS="$TURBO_SERVICE_PIDS $pid"
  say "service $name started (pid $pid) on $ep, waiting for it to answer ping"
  if ! "$TURBO_BIN/echo" --ping "$ep" --timeout "$TURBO_READY_TIMEOUT" >/dev/null; then
    say "service $name did not become ready in ${TURBO_READY_TIMEOUT}s; log: $TURBO_WORKSPACE/logs/$name.log"
    exit 1
  fi
}

services_stop() {
  for pid in $TURBO_SERVICE_PIDS; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in $TURBO_SERVICE_PIDS; do
    wait "$pid" 2>/dev/null
  done
  TURBO_SERVICE_PIDS=""
}

pipeline_summary() {
  say "done. Steps:$TURBO_PIPELINE_STEPS"
}
