#!/bin/sh
# tests/test_service_echo.sh — bin/echo as run.sh uses it: serve under a workspace, answer
# --ping and --call, refuse a second service on a live socket, stop on SIGTERM with exit 0 and
# the socket file removed, fail clearly on a dead endpoint and on an ipc path that is too long.
BIN=${BIN:-bin}
ECHO="$BIN/echo"
[ -x "$ECHO" ] || { echo "skipped: $ECHO is not built (make stages)"; exit 77; }
OUT=${TURBO_TEST_OUT:-${BUILD:-build}/test-out/test_service_echo}
WS="$OUT/ws"
rm -rf "$WS"
mkdir -p "$WS"
fail=0
check() { # check DESCRIPTION COMMAND…
  what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}

EP="ipc://$WS/sock/echo.ipc"
"$ECHO" --workspace "$WS" 2>"$OUT/service.log" &
pid=$!
check "ping answers" "$ECHO" --ping "$EP" --timeout 10
"$ECHO" --ping "$EP" --timeout 5 >"$OUT/pong.txt"
check "pong names the service and its pid" grep -q "service=echo pid=$pid " "$OUT/pong.txt"
check "echo of 3 MB comes back intact" "$ECHO" --call "$EP" --bytes 3000000
check "socket file under the workspace" test -S "$WS/sock/echo.ipc"

"$ECHO" --workspace "$WS" 2>"$OUT/second.log"
rc=$?
check "a second service on a live socket is refused" test $rc -ne 0
check "…with a clear message" grep -q "already served" "$OUT/second.log"
check "the first one still answers" "$ECHO" --ping "$EP" --timeout 5

kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM: exit 0 (got $rc)" test $rc -eq 0
check "SIGTERM: socket file removed" test ! -e "$WS/sock/echo.ipc"

t0=$(date +%s)
"$ECHO" --ping "$EP" --timeout 0.5 2>"$OUT/dead.log"
rc=$?
t1=$(date +%s)
check "ping of a dead endpoint fails" test $rc -eq 1
check "…within its timeout" test $((t1 - t0)) -le 3
check "…saying so" grep -q "no service answered ping" "$OUT/dead.log"

long="$WS/$(printf 'x%.0s' $(seq 1 120))"
"$ECHO" --workspace "$long" 2>"$OUT/long.log"
rc=$?
check "an ipc path over 107 bytes is refused" test $rc -ne 0
check "…with a clear message" grep -q "longer than the 107" "$OUT/long.log"

[ $fail -eq 0 ] && echo "test_service_echo: all passed"
exit $fail
