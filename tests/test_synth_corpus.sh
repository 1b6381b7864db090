#!/bin/sh
# bin/synth end to end on a small corpus: the same seed with 1 and 2 workers gives identical
# manifests, truth and video files, and identical decoded frames (ffmpeg framemd5); every clip
# the truth calls broken fails ffprobe and every other clip passes it with the frame count the
# truth gives; a rerun with the same settings makes nothing and changes nothing; a rerun with
# other settings is refused without --force.
set -u
BIN=${BIN:-bin}
OUT=${TURBO_TEST_OUT:-build/test-out/test_synth_corpus}
rm -rf "$OUT" && mkdir -p "$OUT"
fail=0
bad() { echo "FAIL: $*"; fail=1; }

ARGS="--quick --clips 16 --seed 21 --rate-broken 0.2 --rate-flicker 0.2 --rate-low-quality 0.2 --rate-shot-cut 0.2"
"$BIN/synth" $ARGS --workers 1 --out "$OUT/w1" || bad "synth --workers 1"
"$BIN/synth" $ARGS --workers 2 --out "$OUT/w2" 2>"$OUT/w2.log" || bad "synth --workers 2"
grep -q "synth: 16/16 clips" "$OUT/w2.log" || bad "no progress output"

for f in manifest.csv manifest.jsonl truth.jsonl synth.json; do
  cmp -s "$OUT/w1/$f" "$OUT/w2/$f" || bad "$f differs between 1 and 2 workers"
done
n=0
for v in "$OUT"/w1/videos/*.mp4; do
  b=$(basename "$v")
  cmp -s "$v" "$OUT/w2/videos/$b" || bad "videos/$b differs between 1 and 2 workers"
  n=$((n + 1))
done
[ "$n" -eq 16 ] || bad "$n videos, expected 16"
[ -z "$(ls "$OUT"/w1/videos | grep -v '\.mp4$')" ] || bad "temporary files left in videos/"

# broken clips per the truth; every other clip decodes to the same frames in both corpora
broken=$(grep '"type":"broken"' "$OUT/w1/truth.jsonl" | sed 's/^{"videoid":\([0-9]*\),.*/\1/')
[ -n "$broken" ] || bad "no broken clip in the corpus (rate 0.2 of 16)"
for id in $(seq 0 15); do
  f=$(printf 'videos/%06d.mp4' "$id")
  if echo "$broken" | grep -qx "$id"; then
    if ffprobe -v error -count_frames -show_entries stream=nb_read_frames "$OUT/w1/$f" >/dev/null 2>&1; then
      bad "$f is marked broken but ffprobe reads it"
    fi
    if ffmpeg -v error -i "$OUT/w1/$f" -f null - >/dev/null 2>&1; then
      bad "$f is marked broken but ffmpeg decodes it"
    fi
    continue
  fi
  want=$(sed -n "$((id + 1))p" "$OUT/w1/truth.jsonl" | sed 's/.*"frames":\([0-9]*\),.*/\1/')
  got=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames \
        -of csv=p=0 "$OUT/w1/$f" 2>/dev/null)
  [ "$got" = "$want" ] || bad "$f: ffprobe reads $got frames, truth says $want"
  ffmpeg -v error -i "$OUT/w1/$f" -f framemd5 - 2>/dev/null | grep -v '^#' >"$OUT/a.md5"
  ffmpeg -v error -i "$OUT/w2/$f" -f framemd5 - 2>/dev/null | grep -v '^#' >"$OUT/b.md5"
  [ -s "$OUT/a.md5" ] && cmp -s "$OUT/a.md5" "$OUT/b.md5" || bad "$f: decoded frames differ"
done

# idempotent: a rerun with the same settings makes nothing and leaves the files alone
sum1=$(cat "$OUT"/w1/videos/*.mp4 "$OUT"/w1/*.jsonl | md5sum)
"$BIN/synth" $ARGS --workers 2 --out "$OUT/w1" 2>"$OUT/rerun.log" || bad "rerun failed"
grep -q "writing 0 clips" "$OUT/rerun.log" || bad "rerun made clips again: $(cat "$OUT/rerun.log")"
sum2=$(cat "$OUT"/w1/videos/*.mp4 "$OUT"/w1/*.jsonl | md5sum)
[ "$sum1" = "$sum2" ] || bad "rerun changed the corpus"
# a lost clip is made again, identical
rm -f "$OUT/w1/videos/000003.mp4"
"$BIN/synth" $ARGS --workers 2 --out "$OUT/w1" 2>"$OUT/rerun2.log" || bad "resume failed"
grep -q "writing 1 clips" "$OUT/rerun2.log" || bad "resume did not make exactly the lost clip"
cmp -s "$OUT/w1/videos/000003.mp4" "$OUT/w2/videos/000003.mp4" || bad "remade clip differs"
# other settings: refused without --force
if "$BIN/synth" --quick --clips 16 --seed 22 --out "$OUT/w1" 2>/dev/null; then
  bad "a different seed overwrote the corpus without --force"
fi
cmp -s "$OUT/w1/truth.jsonl" "$OUT/w2/truth.jsonl" || bad "refused run still changed truth.jsonl"

[ $fail -eq 0 ] && echo "test_synth_corpus: ok"
exit $fail
