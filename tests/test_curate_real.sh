#!/bin/sh
# tests/test_curate_real.sh — bin/curate on real-photo footage (tests/fixtures/real/footage, made by
# tools/make_real_fixtures.sh from scikit-image's photographs) and hostile inputs: one check per
# defect of issue 14, each printing "defect N: ok" or "defect N: FAIL …"; exit 1 when any
# failed. Needs the ffmpeg tool for the tiny and odd inputs (skips with 77 without it).
set -u
BUILD=${BUILD:-build}
BIN=${BIN:-bin}
OUT=${TURBO_TEST_OUT:-$BUILD/test-out/test_curate_real}
FIX=tests/fixtures/real/footage
[ -x "$BIN/curate" ] || { echo "FAIL: $BIN/curate not built"; exit 1; }
command -v sqlite3 >/dev/null || { echo "skip: sqlite3 tool missing"; exit 77; }
command -v ffmpeg >/dev/null || { echo "skip: ffmpeg tool missing"; exit 77; }
[ -f "$FIX/manifest.csv" ] || { echo "FAIL: $FIX missing"; exit 1; }
rm -rf "$OUT"; mkdir -p "$OUT"
failed=0
bad() { echo "defect $1: FAIL $2"; failed=$((failed + 1)); }
good() { echo "defect $1: ok"; }
R="$OUT/root"; mkdir -p "$R/videos"
cp "$FIX"/videos/*.mp4 "$R/videos/"
q() { sqlite3 "$1/catalogue.db" "$2"; }
flag() { q "$1" "SELECT CAST(x.value AS INTEGER) FROM clip_stats x JOIN clips c ON c.id = x.clip_id JOIN sources s ON s.id = c.source_id WHERE s.path = '$2' AND x.name = '$3'"; }

# 1. A line with the wrong field count that names a good file leaves the file alone.
W="$OUT/ws1"
printf 'path,caption\nvideos/coffee-pan.mp4,"the camera pans right"\nvideos/coffee-pan.mp4,extra,field\n' >"$R/m1.csv"
"$BIN/curate" --manifest "$R/m1.csv" --root "$R" --workspace "$W" --workers 1 >"$OUT/1a.log" 2>&1
"$BIN/curate" --manifest "$R/m1.csv" --root "$R" --workspace "$W" --workers 1 >"$OUT/1b.log" 2>&1
st=$(q "$W" "SELECT status FROM sources WHERE path = 'videos/coffee-pan.mp4'")
if [ "$st" != ok ]; then bad 1 "good file marked '$st': $(q "$W" "SELECT reason FROM sources")"
elif ! grep -Eq "skipped \(unchanged, not decoded\), 0 decoded" "$OUT/1b.log"; then bad 1 "rerun decoded again: $(grep scan: "$OUT/1b.log")"
else good 1; fi

# 2. The same content under several names: one path twice ("./"), a symlink, a byte copy, and
# re-encodes at 360 and 1080 px (of the same camera move over the same photograph, with a mark
# added). A dataset holds one clip of each content.
W="$OUT/ws2"
ln -sf coffee-pan.mp4 "$R/videos/link.mp4"
cp "$R/videos/coffee-pan.mp4" "$R/videos/copy.mp4"
{ echo 'path,caption'
  for p in videos/coffee-pan.mp4 ./videos/coffee-pan.mp4 videos/link.mp4 videos/copy.mp4 videos/res-wm-360.mp4 videos/res-wm-1080.mp4 videos/coffee-zoom.mp4 videos/coffee-wm-dark.mp4; do
    echo "$p,\"the camera pans right across a coffee cup\""; done; } >"$R/m2.csv"
printf 'name dup\nseed 3\nval_fraction 0.5\nframes 16\nfps 8\nwidth 64\nheight 64\nsubset all weight 1\n' >"$OUT/dup.recipe"
"$BIN/curate" --manifest "$R/m2.csv" --root "$R" --workspace "$W" --workers 2 >"$OUT/2a.log" 2>&1
"$BIN/curate" --workspace "$W" --root "$R" --recipe "$OUT/dup.recipe" >"$OUT/2b.log" 2>&1
src=$(q "$W" "SELECT count(*) FROM sources")
mem=$(q "$W" "SELECT s.path FROM dataset_members m JOIN clips c ON c.id = m.clip_id JOIN sources s ON s.id = c.source_id" | sort | tr '\n' ' ')
npan=$(echo "$mem" | tr ' ' '\n' | grep -cE "coffee-pan|copy")
nres=$(echo "$mem" | tr ' ' '\n' | grep -c "res-wm")
if [ "$src" -ne 6 ]; then bad 2 "$src sources for 6 files (aliases curated apart)"
elif [ $((npan + nres)) -ne 1 ]; then bad 2 "one content, several members: $mem"
else good 2; fi

# 6+4. Verdicts for the same clip at 360/540/720/1080 px agree (statistics on a fixed analysis size).
W="$OUT/ws6"
{ echo 'path,caption'; for h in 360 540 720 1080; do echo "videos/res-wm-$h.mp4,\"the camera pans right across a coffee cup\""; done; } >"$R/m6.csv"
"$BIN/curate" --manifest "$R/m6.csv" --root "$R" --workspace "$W" --workers 2 >"$OUT/6.log" 2>&1
v=$(q "$W" "SELECT group_concat(f, '|') FROM (SELECT s.path, (SELECT group_concat(x.name || '=' || x.value) FROM clip_stats x WHERE x.clip_id = c.id AND x.name LIKE 'flaw_%' ORDER BY x.name) f FROM sources s JOIN clips c ON c.source_id = s.id ORDER BY s.path)")
n=$(echo "$v" | tr '|' '\n' | sort -u | wc -l)
lw=$(q "$W" "SELECT count(*) FROM clip_stats WHERE name = 'flaw_lowq' AND value = 1")
wm=$(q "$W" "SELECT count(*) FROM clip_stats WHERE name = 'flaw_watermark' AND value = 1")
ah=$(flag "$W" videos/res-wm-1080.mp4 analysis_height)
if [ "$n" -ne 1 ]; then bad 6 "verdicts differ by resolution: $v"
elif [ "$ah" != 160 ]; then bad 6 "the 1080p source was analysed at height '$ah', not the fixed 160"
elif [ "$lw" -ne 0 ] || [ "$wm" -ne 4 ]; then bad 4 "lowq on $lw of 4 sharp re-encodes, watermark on $wm of 4"
else good 6; good 4; fi

# 3. The display matrix is applied: the phone clip's frames are its landscape twin's.
W="$OUT/ws3"
printf 'path,caption\nvideos/coffee-rotated.mp4,"pans"\nvideos/coffee-pan.mp4,"pans"\n' >"$R/m3.csv"
"$BIN/curate" --manifest "$R/m3.csv" --root "$R" --workspace "$W" --workers 1 >"$OUT/3.log" 2>&1
a=$(flag "$W" videos/coffee-rotated.mp4 brightness); b=$(flag "$W" videos/coffee-pan.mp4 brightness)
fa=$(flag "$W" videos/coffee-rotated.mp4 flow_dir); fb=$(flag "$W" videos/coffee-pan.mp4 flow_dir)
w=$(q "$W" "SELECT width || 'x' || height FROM sources WHERE path = 'videos/coffee-rotated.mp4'")
if awk -v a="$fa" -v b="$fb" 'BEGIN { d = a - b; if (d < 0) d = -d; if (d > 180) d = 360 - d; exit !(d < 20) }'; then good 3
else bad 3 "flow direction $fa of the rotated clip vs $fb (brightness $a vs $b, source $w)"; fi

# 7. Limits up front; a killed worker is not a bad file and the exit status says so; workers
# end with their parent.
W="$OUT/ws7"
ok7=1
"$BIN/curate" --manifest "$R/m3.csv" --root "$R" --workspace "$W" --fps nan >"$OUT/7a.log" 2>&1; rc=$?
[ $rc -eq 2 ] || { bad 7 "--fps nan: exit $rc"; ok7=0; }
"$BIN/curate" --manifest "$R/m3.csv" --root "$R" --workspace "$W" --size 100000 >"$OUT/7b.log" 2>&1; rc=$?
[ $rc -eq 2 ] || { bad 7 "--size 100000: exit $rc"; ok7=0; }
TURBO_CURATE_TEST_SIGNAL="9:videos/coffee-pan.mp4" "$BIN/curate" --manifest "$R/m3.csv" --root "$R" --workspace "$W" --workers 1 >"$OUT/7c.log" 2>&1; rc=$?
st=$(q "$W" "SELECT coalesce(status, '') || ' ' || coalesce(reason, '') FROM sources WHERE path = 'videos/coffee-pan.mp4'")
[ $rc -eq 3 ] || { bad 7 "killed worker: exit $rc"; ok7=0; }
[ -z "$st" ] || { bad 7 "killed worker recorded against the file: $st"; ok7=0; }
TURBO_CURATE_TEST_SIGNAL="11:videos/coffee-pan.mp4" "$BIN/curate" --manifest "$R/m3.csv" --root "$R" --workspace "$W" --workers 1 >"$OUT/7d.log" 2>&1
q "$W" "SELECT reason FROM sources WHERE path = 'videos/coffee-pan.mp4'" | grep -q "decoder crashed" || { bad 7 "a crash on the file is not recorded as one"; ok7=0; }
{ echo 'path,caption'; for i in $(seq 1 40); do for f in "$R"/videos/res-wm-1080.mp4; do cp "$R/videos/res-wm-1080.mp4" "$R/videos/slow$i.mp4"; echo "videos/slow$i.mp4,x"; done; done; } >"$R/m7.csv"
"$BIN/curate" --manifest "$R/m7.csv" --root "$R" --workspace "$OUT/ws7b" --workers 2 --force >"$OUT/7e.log" 2>&1 &
ppid=$!
sleep 0.7
kids=$(ps -o pid= --ppid "$ppid" | tr -d ' ' | tr '\n' ' ')
kill -9 "$ppid"; wait "$ppid" 2>/dev/null
sleep 0.5
left=""
for k in $kids; do
  st=$(ps -o stat= -p "$k" 2>/dev/null | cut -c1)
  [ -n "$st" ] && [ "$st" != Z ] && left="$left $k"   # a zombie has ended, only not reaped yet
done
[ -n "$kids" ] || echo "note: the run ended before its workers could be seen"
[ -z "$left" ] || { bad 7 "workers$left still running after their parent was killed"; for k in $left; do kill -9 "$k"; done; ok7=0; }
[ $ok7 -eq 1 ] && good 7

# 8. A minimum source resolution.
W="$OUT/ws8"
ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc=s=8x8:r=8:d=3 -c:v libx264 -pix_fmt yuv444p "$R/videos/tiny8.mp4"
ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc=s=2x2:r=8:d=3 -c:v libx264 -pix_fmt yuv444p "$R/videos/tiny2.mp4"
printf 'path,caption\nvideos/tiny8.mp4,x\nvideos/tiny2.mp4,x\n' >"$R/m8.csv"
"$BIN/curate" --manifest "$R/m8.csv" --root "$R" --workspace "$W" --workers 1 >"$OUT/8.log" 2>&1
n=$(q "$W" "SELECT count(*) FROM sources WHERE status = 'rejected' AND reason LIKE 'too small%'")
[ "$n" -eq 2 ] && good 8 || bad 8 "$n of 2 tiny sources rejected as too small: $(q "$W" "SELECT path, status, reason FROM sources")"

# 5. Watermarks light and dark, and no false ones on still shots; a whip pan and a 1 fps source
# resampled are not cuts; a real cut is.
W="$OUT/ws5"
{ echo 'path,caption'; for c in wm-white wm-dark logo still dark-still whip 1fps cut pan; do echo "videos/coffee-$c.mp4,\"the camera pans right\""; done; } >"$R/m5.csv"
"$BIN/curate" --manifest "$R/m5.csv" --root "$R" --workspace "$W" --workers 2 >"$OUT/5.log" 2>&1
msg=""
for c in wm-white wm-dark logo; do [ "$(flag "$W" videos/coffee-$c.mp4 flaw_watermark)" = 1 ] || msg="$msg $c-missed"; done
for c in still dark-still pan whip; do [ "$(flag "$W" videos/coffee-$c.mp4 flaw_watermark)" = 0 ] || msg="$msg $c-false-watermark"; done
for c in whip 1fps pan; do [ "$(flag "$W" videos/coffee-$c.mp4 flaw_cut)" = 0 ] || msg="$msg $c-false-cut"; done
[ "$(flag "$W" videos/coffee-cut.mp4 flaw_cut)" = 1 ] || msg="$msg cut-missed"
[ -z "$msg" ] && good 5 || bad 5 "$msg"

# 9. Messages say what a file is; a flood of duplicate lines is summarised.
W="$OUT/ws9"
: >"$R/videos/empty.mp4"
echo "just some text, not a video" >"$R/videos/notes.mp4"
ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc=s=64x64 -frames:v 1 -f image2 -c:v png "$R/videos/image.mp4"
{ echo 'path,caption'; echo 'videos/empty.mp4,x'; echo 'videos/notes.mp4,x'; echo 'videos/image.mp4,x'
  i=0; while [ $i -lt 300 ]; do echo 'videos/coffee-pan.mp4,x'; i=$((i + 1)); done; } >"$R/m9.csv"
"$BIN/curate" --manifest "$R/m9.csv" --root "$R" --workspace "$W" --workers 1 >"$OUT/9.log" 2>&1
msg=""
q "$W" "SELECT reason FROM sources WHERE path = 'videos/empty.mp4'" | grep -q "empty file" || msg="$msg empty:'$(q "$W" "SELECT reason FROM sources WHERE path = 'videos/empty.mp4'")'"
q "$W" "SELECT reason FROM sources WHERE path = 'videos/notes.mp4'" | grep -q "text file" || msg="$msg text:'$(q "$W" "SELECT reason FROM sources WHERE path = 'videos/notes.mp4'")'"
q "$W" "SELECT reason FROM sources WHERE path = 'videos/image.mp4'" | grep -qi "image" || msg="$msg png:'$(q "$W" "SELECT reason FROM sources WHERE path = 'videos/image.mp4'")'"
nw=$(grep -c "manifest: line" "$OUT/9.log")
[ "$nw" -le 20 ] || msg="$msg $nw-warnings-for-299-duplicates"
grep -q "3 files rejected" "$OUT/9.log" || msg="$msg count:'$(grep scan: "$OUT/9.log")'"
rows=$(grep -c "<tr><td>[0-9]" "$W/reports/curate.html")
[ "$rows" -le 260 ] || msg="$msg report-rows:$rows"
t0=$(date +%s)
"$BIN/catalogue" --workspace "$W" --time-limit 1 sql "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r" >"$OUT/9sql.log" 2>&1 &
sp=$!
( sleep 20; kill -9 $sp 2>/dev/null ) &
wp=$!
wait $sp; src=$?
kill $wp 2>/dev/null
[ $src -ne 0 ] && [ $(( $(date +%s) - t0 )) -le 10 ] || msg="$msg sql-runaway-not-stopped(exit $src)"
[ -z "$msg" ] && good 9 || bad 9 "$msg"

echo "$failed failed"
[ $failed -eq 0 ]
