#!/bin/sh
# tests/test_long_reward.sh — the three reward models at full size on a full built-in corpus,
# and the wrong-caption flaw found with the video model.
#
#   BUILD=build BIN=bin sh tests/test_long_reward.sh        (about 20 minutes on 2 cores)
#
# A 2,000-clip corpus (bin/synth, seed 4242, default flaw rates), curated; the `rewards`
# dataset; bin/pretrain --model clip, quality and video on it (their training times printed);
# then the tailored recipe, whose learned filter scores every clip with the video model, and
# bin/flawcheck's table with the wrong-caption row. Fails when:
#   clip     retrieval R@5 or colour/shape accuracy do not beat chance by a margin;
#   quality  picks the clean frame of a pair < 95% of the time at held-out strengths;
#   video    picks the right motion direction among four variants < 90% of the time, or the
#            clip model on a single frame is not far below it;
#   the wrong-caption flaw's precision or recall is below 0.8.
# CLIPS=N, SEED=S, STEPS=N (every model) override.
set -u
BUILD=${BUILD:-build}
BIN=${BIN:-bin}
OUT=${TURBO_TEST_OUT:-$BUILD/test-out/test_long_reward}
CLIPS=${CLIPS:-2000}
SEED=${SEED:-4242}
STEPS=${STEPS:-}
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$BIN/pretrain" ] || { echo "skip: $BIN/pretrain not built"; exit 77; }
rm -rf "$OUT"
mkdir -p "$OUT"
C="$OUT/corpus"
WS="$OUT/ws"

"$BIN/synth" --clips "$CLIPS" --seed "$SEED" --out "$C" --workspace "$WS" --workers 2 >"$OUT/synth.log" 2>&1 ||
  fail "synth: $(tail -3 "$OUT/synth.log")"
"$BIN/curate" --manifest "$C/manifest.csv" --workspace "$WS" --workers 2 >"$OUT/curate.log" 2>&1 ||
  fail "curate: $(tail -5 "$OUT/curate.log")"
"$BIN/curate" --workspace "$WS" --recipe pipelines/recipes/rewards.recipe >"$OUT/rewards.log" 2>&1 ||
  fail "rewards dataset: $(tail -5 "$OUT/rewards.log")"
grep -E "members" "$OUT/rewards.log"

# metric NAME of model M's last run, from the catalogue
metric() {
  "$BIN/catalogue" --workspace "$WS" --csv sql "SELECT value FROM metrics WHERE name = '$2' AND run_id = (SELECT max(r.id) FROM runs r WHERE r.stage = 'pretrain' AND r.args LIKE '''pretrain $1''%')" | tail -n +2 | head -1
}
# awk comparison: ge A B → exit 0 when A >= B
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }

for m in clip quality video; do
  "$BIN/pretrain" --model "$m" --workspace "$WS" --dataset rewards ${STEPS:+--steps $STEPS} >"$OUT/pretrain-$m.log" 2>&1 ||
    fail "pretrain $m: $(tail -5 "$OUT/pretrain-$m.log")"
  grep -E "trained in|val:" "$OUT/pretrain-$m.log" | sed 's/^[A-Z]: pretrain\[[0-9]*\] //'
done

r5=$(metric clip retrieval_r5); ch=$(metric clip retrieval_chance_r1)
ge "$r5" "$(awk -v c="$ch" 'BEGIN { print 10 * c }')" || fail "clip: retrieval R@5 $r5 is not 2x the chance R@5 ($ch x 5)"
ca=$(metric clip colour_acc); sa=$(metric clip shape_acc)
ge "$ca" 0.5 || fail "clip: colour accuracy $ca (chance 0.125)"
ge "$sa" 0.4 || fail "clip: shape accuracy $sa (chance 0.25)"
qa=$(metric quality pair_acc_held_out)
ge "$qa" 0.95 || fail "quality: clean preferred in $qa of the pairs at held-out strengths (< 0.95)"
va=$(metric video direction_acc); cd1=$(metric clip direction_acc_single_frame)
ge "$va" 0.9 || fail "video: right direction among 4 variants in $va (< 0.9)"
ge "$(awk -v v="$va" 'BEGIN { print v - 0.3 }')" "$cd1" || fail "clip on one frame ($cd1) is not far below video ($va)"
echo "video direction accuracy $va; clip on a single frame $cd1"

"$BIN/curate" --workspace "$WS" --recipe pipelines/recipes/tailored.recipe >"$OUT/tailored.log" 2>&1 ||
  fail "tailored dataset: $(tail -5 "$OUT/tailored.log")"
grep -E "text_video_score|members" "$OUT/tailored.log" | sed 's/^[A-Z]: curate\[[0-9]*\] //'
"$BIN/flawcheck" --truth "$C/truth.jsonl" --workspace "$WS" >"$OUT/flawcheck.txt" 2>&1 || fail "flawcheck"
cat "$OUT/flawcheck.txt"
line=$(grep '^wrong_caption' "$OUT/flawcheck.txt")
p=$(echo "$line" | awk '{ print $5 }'); r=$(echo "$line" | awk '{ print $6 }')
ge "$p" 0.8 && ge "$r" 0.8 || fail "wrong_caption precision $p recall $r (< 0.8)"
echo "ok"
