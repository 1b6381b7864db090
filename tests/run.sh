#!/bin/sh
# Runs turbo's tests: every compiled $BUILD/tests/test_* and every tests/test_*.sh.
#   sh tests/run.sh default|long|cuda [NAME-FILTER]
# A test passes with exit 0, is skipped with exit 77 (e.g. CUDA without a GPU), fails otherwise.
# Suites: a test belongs to "long" if its name contains _long, to "cuda" if it contains _cuda;
# the default suite runs every other test, plus the cuda tests (which skip without a GPU).
# Closing line: "N passed, N failed, N skipped".
BUILD=${BUILD:-build}
BIN=${BIN:-bin}
SUITE=${1:-default}
FILTER=${2:-}
TIMEOUT=${TURBO_TEST_TIMEOUT:-900}
# TURBO_TEST_WRAPPER runs each compiled test under a tool, e.g. "valgrind --error-exitcode=1".
TURBO_TEST_WRAPPER=${TURBO_TEST_WRAPPER:-}
export BUILD BIN
export TURBO_NO_TTY=1
out="$BUILD/test-out"
mkdir -p "$out"
pass=0; fail=0; skip=0; failed=""
list=""
for t in "$BUILD"/tests/test_* tests/test_*.sh; do
  [ -e "$t" ] || continue
  case "$t" in *.o|*.d) continue ;; esac
  name=$(basename "$t" .sh)
  case "$SUITE" in
    default) case "$name" in *_long*) continue ;; esac ;;
    long) case "$name" in *_long*) ;; *) continue ;; esac ;;
    cuda) case "$name" in *_cuda*) ;; *) continue ;; esac ;;
  esac
  # Under valgrind: only compiled tests, and not the minutes-long training ones nor the UNet's
  # 530 finite-difference probes (hours under memcheck; `make asan` covers them).
  if [ "${TURBO_VALGRIND:-0}" = 1 ]; then
    case "$t" in *.sh|*learns*|*_bench*|*/test_unet) continue ;; esac
  fi
  if [ -n "$FILTER" ]; then case "$name" in *"$FILTER"*) ;; *) continue ;; esac; fi
  list="$list $t"
done
for t in $list; do
  name=$(basename "$t" .sh)
  log="$out/$name.log"
  start=$(date +%s)
  case "$t" in
    *.sh) TURBO_TEST_OUT="$out/$name" timeout "$TIMEOUT" sh "$t" >"$log" 2>&1 ;;
    *) TURBO_TEST_OUT="$out/$name" timeout "$TIMEOUT" $TURBO_TEST_WRAPPER "$t" >"$log" 2>&1 ;;
  esac
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then
    pass=$((pass + 1)); printf 'PASS  %-32s %4ds\n' "$name" "$secs"
  elif [ $rc -eq 77 ]; then
    skip=$((skip + 1)); printf 'SKIP  %-32s %4ds  %s\n' "$name" "$secs" "$(grep -i skip "$log" | tail -1 | cut -c1-100)"
  else
    fail=$((fail + 1)); failed="$failed $name"
    printf 'FAIL  %-32s %4ds  (exit %d; log %s)\n' "$name" "$secs" "$rc" "$log"
    tail -n 25 "$log" | sed 's/^/    | /'
  fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
