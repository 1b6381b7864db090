#!/bin/sh
# Runs turbo's benchmarks: every $BUILD/bench/bench_* (cpu suite: all but *_cuda*; cuda suite:
# only *_cuda*). Each prints its own table; results are also saved under $BUILD/bench-out/.
# The cpu suite then runs the race against PyTorch (bench/race.py: the same UNet in PyTorch
# eager and torch.compile, interleaved with turbo) when python3 can import torch, and says it
# skipped the race when it cannot. RACE_ARGS passes options to race.py (e.g. "--threads 1").
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
  # the exit status through the pipe (sh has no pipefail)
  { "$b" 2>"$out/$name.err"; echo $? >"$out/$name.rc"; } | tee "$out/$name.txt"
  rc=$(cat "$out/$name.rc")
  [ $rc -eq 0 ] || [ $rc -eq 77 ] || { echo "$name failed (exit $rc), see $out/$name.err"; status=1; }
done
if [ "$SUITE" = cpu ] && { [ -z "$FILTER" ] || case race in *"$FILTER"*) true ;; *) false ;; esac; }; then
  if python3 -c 'import torch' >/dev/null 2>&1; then
    echo "== race (turbo vs PyTorch $(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null))"
    # shellcheck disable=SC2086
    { python3 bench/race.py $RACE_ARGS 2>"$out/race.err"; echo $? >"$out/race.rc"; } | tee "$out/race.txt"
    rc=$(cat "$out/race.rc")
    [ $rc -eq 0 ] || { echo "race failed (exit $rc), see $out/race.err"; status=1; }
  else
    echo "== race: skipped (python3 cannot import torch); turbo's side ran above"
  fi
fi
exit $status
