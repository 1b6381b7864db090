#!/bin/sh
# Runs turbo's benchmarks: every $BUILD/bench/bench_* (cpu suite: all but *_cuda*; cuda suite:
# only *_cuda*). Each prints its own table; results are also saved under $BUILD/bench-out/.
BUILD=${BUILD:-build}
BIN=${BIN:-bin}
SUITE=${1:-cpu}
FILTER=${2:-}
export BUILD BIN TURBO_NO_TTY=1
out="$BUILD/bench-out"
mkdir -p "$out"
status=0
for b in "$BUILD"/bench/bench_*; do
  [ -x "$b" ] || continue
  case "$b" in *.o|*.d) continue ;; esac
  name=$(basename "$b")
  case "$SUITE" in
    cpu) case "$name" in *_cuda*) continue ;; esac ;;
    cuda) case "$name" in *_cuda*) ;; *) continue ;; esac ;;
  esac
  if [ -n "$FILTER" ]; then case "$name" in *"$FILTER"*) ;; *) continue ;; esac; fi
  echo "== $name"
  "$b" 2>"$out/$name.err" | tee "$out/$name.txt"
  rc=$?
  [ $rc -eq 0 ] || [ $rc -eq 77 ] || { echo "$name failed (exit $rc), see $out/$name.err"; status=1; }
done
exit $status
