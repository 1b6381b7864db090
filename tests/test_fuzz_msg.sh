#!/bin/sh
# Builds the message fuzzer (tests/fuzz/fuzz_msg.c: decoder + validator against schemas/) and
# runs it for a bounded time from the seeds. Fails on any crash, leak, sanitizer report or
# decoding invariant broken; skips (77) when clang or libFuzzer is not available.
#   FUZZ_TEST_SECONDS (default 20) bounds the run; when (re)building the fuzzer took long, the
#   run is shortened so build + run stay within ~45 s (never below 10 s of fuzzing).
BUILD=${BUILD:-build}
BIN=${BIN:-bin}
SECS=${FUZZ_TEST_SECONDS:-20}
OUT=${TURBO_TEST_OUT:-$BUILD/test-out/test_fuzz_msg}
mkdir -p "$OUT/corpus" || exit 1

if ! command -v clang >/dev/null 2>&1; then
  echo "skipped: clang not found"; exit 77
fi
probe="$OUT/probe"
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
  > "$probe.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" >/dev/null 2>&1; then
  echo "skipped: clang cannot link libFuzzer (install libclang-rt-dev)"; exit 77
fi

t0=$(date +%s)
if ! make -s BUILD="$BUILD" BIN="$BIN" "$BUILD/fuzz/fuzz_msg" >"$OUT/build.log" 2>&1; then
  tail -n 20 "$OUT/build.log"
  echo "FAIL: building $BUILD/fuzz/fuzz_msg"; exit 1
fi
built=$(( $(date +%s) - t0 ))
if [ -z "${FUZZ_TEST_SECONDS:-}" ] && [ $((built + SECS)) -gt 45 ]; then
  SECS=$((45 - built)); [ $SECS -lt 10 ] && SECS=10
fi
echo "fuzzer build ${built}s, fuzzing ${SECS}s"

# libFuzzer's own default exit code for a finding is 77, which would read as "skipped":
# map every finding to 1.
"$BUILD/fuzz/fuzz_msg" -max_total_time="$SECS" -max_len=65536 -timeout=10 \
  -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
  -artifact_prefix="$OUT/" "$OUT/corpus" tests/fuzz/seeds >"$OUT/fuzz.log" 2>&1
rc=$?
tail -n 15 "$OUT/fuzz.log"
if [ $rc -ne 0 ]; then
  echo "FAIL: fuzzer exit $rc; reproducer under $OUT/ (crash-*, leak-*, timeout-*)"; exit 1
fi
runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/fuzz.log" | grep -o '[0-9]*$')
echo "fuzz_msg: ${runs:-?} inputs in ${SECS}s, no findings"
exit 0
