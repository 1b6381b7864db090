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

[ $fail -eq 0 ]
