#!/bin/sh
# run.sh: --help lists pipelines and stages; an unknown target is refused; one stage runs alone
# in the workspace; a pipeline's services start, answer ping, and stop on exit.
set -u
fail=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fail=1; }
WS=${TURBO_TEST_OUT:-build/test-out/test_runsh}/ws
rm -rf "$WS"; mkdir -p "$WS"
export TURBO_BIN=$BIN TURBO_WORKSPACE=$WS

help=$(./run.sh --help 2>&1)
echo "$help" | grep -q '^  default ' && ok "help lists the default pipeline" || bad "help lacks default pipeline"
echo "$help" | grep -q '^  quick ' && ok "help lists quick" || bad "help lacks quick"
for s in curate synth catalogue echo; do
  echo "$help" | grep -q "^  $s " && ok "help lists stage $s" || bad "help lacks stage $s"
done
echo "$help" | grep -q '^  lib ' && bad "help lists lib.sh as a pipeline"

./run.sh no-such-thing >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] && ok "unknown target exits 2" || bad "unknown target exit $rc"

./run.sh catalogue tables > "$WS/tables.txt" 2>&1; rc=$?
[ $rc -ne 0 ] && grep -q "no catalogue at $WS/catalogue.db" "$WS/tables.txt" \
  && ok "query on an empty workspace names the missing catalogue" || { bad "catalogue on empty ws (exit $rc)"; cat "$WS/tables.txt"; }
./run.sh synth --clips 5 --plan-only > "$WS/synth.txt" 2>&1 && [ -s "$WS/corpus/manifest.jsonl" ] \
  && ok "single stage runs alone in \$TURBO_WORKSPACE" || { bad "synth alone"; tail "$WS/synth.txt"; }

# Services through pipelines/lib.sh: start echo, ping it, stop it; the socket goes away.
(
  . pipelines/lib.sh
  trap services_stop EXIT
  service_start echo --name echo-test
  "$TURBO_BIN/echo" --call "$(service_endpoint echo)" --bytes 65536 --timeout 5 >/dev/null || exit 3
  services_stop
  [ -e "$WS/sock/echo.ipc" ] && exit 4
  exit 0
) > "$WS/svc.log" 2>&1; rc=$?
[ $rc -eq 0 ] && ok "service starts, answers, stops" || { bad "service lifecycle (exit $rc)"; cat "$WS/svc.log"; }

# A service killed with -9 is named, restarted, and answers again; clients meanwhile retry.
(
  . pipelines/lib.sh
  trap services_stop EXIT
  service_start echo --name echo-test
  p1=$(cat "$WS/sock/echo.pid")
  kill -KILL "$p1"
  i=0
  while [ $i -lt 20 ]; do
    p2=$(cat "$WS/sock/echo.pid" 2>/dev/null)
    [ -n "$p2" ] && [ "$p2" != "$p1" ] && [ -e "$WS/sock/echo.ready" ] && break
    sleep 0.5; i=$((i + 1))
  done
  [ "$p2" != "$p1" ] || exit 3
  "$TURBO_BIN/echo" --call "$(service_endpoint echo)" --bytes 1024 --timeout 5 >/dev/null || exit 4
  services_check || exit 5
  exit 0
) > "$WS/restart.log" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q "service echo (pid [0-9]*) died" "$WS/restart.log" && grep -q "restart 1 of" "$WS/restart.log" \
  && ok "a killed service is named and restarted" || { bad "restart (exit $rc)"; cat "$WS/restart.log"; }

# A service that cannot start stops the pipeline with its name and its log.
(
  . pipelines/lib.sh
  trap services_stop EXIT
  service_start echo --no-such-option
  exit 0
) > "$WS/badstart.log" 2>&1; rc=$?
[ $rc -ne 0 ] && grep -q "service echo exited during start-up" "$WS/badstart.log" \
  && ok "a service that dies at start is named" || { bad "bad start (exit $rc)"; cat "$WS/badstart.log"; }

# A service that ignores TERM is killed after the grace period.
(
  . pipelines/lib.sh
  TURBO_STOP_GRACE=2
  service_as stuck echo --ignore-term --name stuck
  p=$(cat "$WS/sock/stuck.pid")
  services_stop
  kill -0 "$p" 2>/dev/null && exit 3
  exit 0
) > "$WS/stuck.log" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q "ignored TERM for 2s: KILL" "$WS/stuck.log" \
  && ok "a stuck service is killed after the grace period" || { bad "stuck service (exit $rc)"; cat "$WS/stuck.log"; }

[ $fail -eq 0 ]
