#!/bin/sh
# bin/eval on the built-in world: clean source videos scored against their own captions reach
# >= 0.8 on every exact semantic dimension (>= 0.97: test_long_eval_exact.sh); with the truth shuffled among videos the
# single-attribute dimensions fall to chance (object class 1/4, colour 1/8, scene 1/6, size 1/2,
# direction 1/5, +- 0.2); flicker clips score lower temporal flickering, static clips dynamic
# degree ~0, shot cuts lower subject consistency; a rerun scores nothing anew; --compare gives
# intervals; a bad prompt line is named file:line and field. Skipped until bin/eval is built
# (it needs the evaluation library's sources, kernels/eval/eval.c).
BIN=${BIN:-bin}
OUT=${TURBO_TEST_OUT:-/tmp/test_eval_stage}
[ -x "$BIN/eval" ] || { echo "skipped: $BIN/eval is not built (kernels/eval/eval.c missing)"; exit 77; }
rm -rf "$OUT"; mkdir -p "$OUT"
ws="$OUT/ws"; fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
val() { awk -F, -v d="$2" '$1 == d { print $3 }' "$1"; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 >= b + 0) }'; }
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= t) }'; }

"$BIN/synth" --out "$OUT/clean" --clips 40 --quick --clean --workers 2 >"$OUT/synth.log" 2>&1 || bad "synth"
"$BIN/eval" --workspace "$ws" --truth "$OUT/clean/truth.jsonl" --workers 2 >"$OUT/e1.log" 2>&1 || bad "eval clean"
csv="$ws/eval/corpus/scores.csv"
# clean clips score well above chance on every exact dimension (the >= 0.97 bar of the issue is
# tests/test_long_eval_exact.sh, which the reader does not reach yet)
for d in object_class multiple_objects human_action color spatial_relationship scene \
         temporal_style appearance_style overall_consistency; do
  v=$(val "$csv" $d)
  if ge "$v" 0.8; then ok "clean $d $v >= 0.8"; else bad "clean $d $v < 0.8"; fi
done
[ -f "$ws/eval/corpus/report.html" ] && [ -f "$ws/eval/corpus/bars.png" ] && [ -f "$ws/eval/corpus/results.json" ] || bad "report files"
# rerun: everything from the cache
"$BIN/eval" --workspace "$ws" --truth "$OUT/clean/truth.jsonl" --workers 2 >"$OUT/e2.log" 2>&1
grep -q "(0 new, 40 cached, 0 unreadable)" "$OUT/e2.log" && ok "rerun scores nothing new" || bad "rerun: $(tail -1 "$OUT/e2.log")"
# shuffled truth: chance
"$BIN/eval" --workspace "$ws" --truth "$OUT/clean/truth.jsonl" --shuffle-truth 7 --workers 2 >"$OUT/e3.log" 2>&1 || bad "eval shuffled"
sh="$ws/eval/corpus-shuffled/scores.csv"
for dc in object_class:0.25 color:0.125 scene:0.1667 appearance_style:0.5 human_action:0.2; do
  d=${dc%%:*}; c=${dc#*:}; v=$(val "$sh" $d)
  if near "$v" "$c" 0.2; then ok "shuffled $d $v near chance $c"; else bad "shuffled $d $v not near chance $c"; fi
done
# compare: differences with intervals
"$BIN/eval" --workspace "$ws" --compare corpus corpus-shuffled >"$OUT/cmp.log" 2>&1 || bad "compare"
grep -q "ci_low,ci_high" "$ws/eval/compare/compare.csv" && grep -q "^color,corpus,corpus-shuffled" "$ws/eval/compare/compare.csv" && ok "compare intervals" || bad "compare csv"
# flaws: flicker, static, shot cut, noise, each against clean
for f in flicker static shot-cut; do
  "$BIN/synth" --out "$OUT/$f" --clips 12 --quick --rate-static 0 --rate-flicker 0 --rate-watermark 0 \
    --rate-low-quality 0 --rate-wrong-caption 0 --rate-shot-cut 0 --rate-broken 0 --rate-$f 1 --workers 2 >>"$OUT/synth.log" 2>&1 || bad "synth $f"
  "$BIN/eval" --workspace "$ws" --truth "$OUT/$f/truth.jsonl" --label "f-$f" --workers 2 >"$OUT/e-$f.log" 2>&1 || bad "eval $f"
done
cl=$(val "$csv" temporal_flickering); fl=$(val "$ws/eval/f-flicker/scores.csv" temporal_flickering)
awk -v a="$fl" -v b="$cl" 'BEGIN { exit !(a + 0 < b + 0) }' && ok "flicker $fl < clean $cl" || bad "flicker $fl >= clean $cl"
dd=$(val "$ws/eval/f-static/scores.csv" dynamic_degree)
ge 0.1 "$dd" && ok "static dynamic degree $dd ~ 0" || bad "static dynamic degree $dd"
cs=$(val "$csv" subject_consistency); sc=$(val "$ws/eval/f-shot-cut/scores.csv" subject_consistency)
awk -v a="$sc" -v b="$cs" 'BEGIN { exit !(a + 0 < b + 0) }' && ok "shot cut $sc < clean $cs" || bad "shot cut $sc >= clean $cs"
# a bad prompt line names file:line and field
printf '%s\n' '{"id":"a-0","prompt":"a red circle","truth":{"objects":[{"colour":"red"}]},"samples":[{"seed":1}]}' \
  '{"id":"a-1","prompt":"x","truth":{"objects":[{"colour":"red"}]},"samples":[{"seed":"one"}]}' >"$OUT/bad.jsonl"
mkdir -p "$OUT/vids"
"$BIN/eval" --workspace "$ws" --videos "$OUT/vids" --prompts "$OUT/bad.jsonl" >"$OUT/bad.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "bad.jsonl:2: field 'samples'\[0\].seed" "$OUT/bad.log" && ok "bad prompt line named" || bad "bad prompt (rc $rc): $(cat "$OUT/bad.log")"
exit $fail
