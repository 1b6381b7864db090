#!/bin/sh
# tests/test_curate_e2e.sh — bin/synth → bin/curate → dataset + previews + report, with a
# manifest that also names hostile entries (path traversal, absolute path, missing file,
# truncated and garbage files, an empty file, a bad caption, a short row), an idempotent rerun
# (the second scan decodes nothing), and bin/flawcheck on the result.
# Needs $BIN/synth (skips with 77 when it is not built) and the sqlite3 tool.
set -u
BUILD=${BUILD:-build}
BIN=${BIN:-bin}
OUT=${TURBO_TEST_OUT:-$BUILD/test-out/test_curate_e2e}
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$BIN/synth" ] || { echo "skip: $BIN/synth not built"; exit 77; }
[ -x "$BIN/curate" ] || fail "$BIN/curate not built"
command -v sqlite3 >/dev/null || { echo "skip: sqlite3 tool missing"; exit 77; }
rm -rf "$OUT"
mkdir -p "$OUT"
C="$OUT/corpus"
WS="$OUT/ws"
q() { sqlite3 "$WS/catalogue.db" "$1"; }

"$BIN/synth" --quick --seconds 2 --seed 3 --out "$C" --workspace "$WS" >"$OUT/synth.log" 2>&1 ||
  fail "synth failed: $(tail -3 "$OUT/synth.log")"
n=$(($(wc -l <"$C/manifest.csv") - 1))
[ "$n" -ge 20 ] || fail "synth wrote only $n rows"

# Hostile entries. The data root is $C; one file sits outside it.
printf 'not a video' >"$OUT/outside.mp4"
head -c 2500 "$C/videos/000001.mp4" >"$C/videos/cut.mp4"
head -c 4000 /dev/urandom >"$C/videos/junk.mp4"
: >"$C/videos/empty.mp4"
cp "$C/videos/000002.mp4" "$C/videos/ok copy.mp4"
cp "$C/videos/000003.mp4" "$C/videos/badcap.mp4"
{
  echo '900,../outside.mp4,2,x,escapes the data root,s'
  echo '901,/etc/passwd,2,x,absolute path,s'
  echo '902,videos/missing.mp4,2,x,no such file,s'
  echo '903,videos/cut.mp4,2,x,a truncated file,s'
  echo '904,videos/junk.mp4,2,x,random bytes,s'
  echo '905,videos/empty.mp4,2,x,an empty file,s'
  printf '906,videos/badcap.mp4,2,x,bad \377 caption,s\n'
  echo '909,videos/000005.mp4,2,x,the same path again,s'
  echo '907,videos/short.mp4,2,x'
  echo '908,"videos/ok copy.mp4",2,x,"a quoted, valid row",s'
} >>"$C/manifest.csv"

t0=$(date +%s)
"$BIN/curate" --manifest "$C/manifest.csv" --workspace "$WS" --workers 2 >"$OUT/scan1.log" 2>&1 ||
  fail "first scan failed: $(tail -5 "$OUT/scan1.log")"
t1=$(date +%s)
grep -q "line $((n + 8)): caption is not valid UTF-8" "$OUT/scan1.log" || fail "bad caption not reported by line"
grep -q "line $((n + 10)): 4 fields" "$OUT/scan1.log" || fail "short row not reported by line"

reason() { q "SELECT reason FROM sources WHERE path = '$1'"; }
reason ../outside.mp4 | grep -q "leaves the data root" || fail "traversal: $(reason ../outside.mp4)"
reason /etc/passwd | grep -q "absolute path" || fail "absolute: $(reason /etc/passwd)"
reason videos/missing.mp4 | grep -q "No such file" || fail "missing: $(reason videos/missing.mp4)"
reason videos/cut.mp4 | grep -Eq "undecodable|truncated|damaged" || fail "cut: $(reason videos/cut.mp4)"
reason videos/junk.mp4 | grep -q "undecodable" || fail "junk: $(reason videos/junk.mp4)"
reason videos/empty.mp4 | grep -q "undecodable" || fail "empty: $(reason videos/empty.mp4)"
# A manifest problem is the line's, not the file's: no source row is made from it.
[ -z "$(reason videos/badcap.mp4)" ] || fail "a manifest problem was recorded against the file: $(reason videos/badcap.mp4)"
grep -q "line $((n + 9)): duplicate of line 7" "$OUT/scan1.log" || fail "duplicate path not reported"
[ "$(q "SELECT status FROM sources WHERE path = 'videos/ok copy.mp4'")" = ok ] || fail "quoted row not curated"
total=$(q "SELECT count(*) FROM sources")
[ "$total" -eq $((n + 7)) ] || fail "sources: $total, want $((n + 7)) (manifest problems are not sources)"
clips=$(q "SELECT count(*) FROM clips")
[ "$clips" -ge $((n - 3)) ] || fail "clips: $clips of $n"
nstats=$(q "SELECT count(DISTINCT name) FROM clip_stats")
[ "$nstats" -ge 30 ] || fail "only $nstats statistics per clip"
echo "scan 1: $total sources, $clips clips, $nstats statistics, $((t1 - t0)) s"

# Rerun: nothing is decoded again.
"$BIN/curate" --manifest "$C/manifest.csv" --workspace "$WS" --workers 2 >"$OUT/scan2.log" 2>&1 ||
  fail "second scan failed"
grep "scan:" "$OUT/scan2.log"
grep -Eq "scan: [0-9]+ rows, [0-9]+ skipped \(unchanged, not decoded\), 0 decoded" "$OUT/scan2.log" ||
  fail "second scan decoded again"
[ "$(q "SELECT count(*) FROM clips")" -eq "$clips" ] || fail "rerun changed the clip count"

# A changed file is decoded again; a changed caption only updates caption statistics.
cp "$C/videos/000005.mp4" "$C/videos/000006.mp4"
touch -d '2001-01-01' "$C/videos/000006.mp4"
"$BIN/curate" --manifest "$C/manifest.csv" --workspace "$WS" --workers 1 >"$OUT/scan3.log" 2>&1 || fail "third scan"
grep -q ", 1 decoded" "$OUT/scan3.log" || fail "changed file not redone: $(grep scan: "$OUT/scan3.log")"

# Datasets: quick, and two overlapping ones; rebuilding computes no statistics.
"$BIN/curate" --workspace "$WS" --recipe pipelines/recipes/quick.recipe >"$OUT/ds.log" 2>&1 ||
  fail "dataset quick: $(tail -5 "$OUT/ds.log")"
grep -q "learned filter 'text_video_score >= 0.3' skipped" "$OUT/ds.log" || fail "learned filter not skipped with a warning"
members=$(q "SELECT count(*) FROM dataset_members m JOIN datasets d ON d.id = m.dataset_id WHERE d.name = 'quick'")
[ "$members" -ge 4 ] || fail "quick has $members members"
[ "$(q "SELECT status FROM datasets WHERE name = 'quick'")" = ready ] || fail "quick not ready"
frames=$(q "SELECT count(*) FROM tensors t JOIN datasets d ON d.id = t.dataset_id WHERE d.name = 'quick' AND kind = 'frames' AND shape = '[16,64,64,3]' AND dtype = 'U8'")
[ "$frames" -eq "$members" ] || fail "frames tensors $frames, members $members"
"$BIN/curate" --workspace "$WS" --recipe pipelines/recipes/quick.recipe --dataset quick2 >"$OUT/ds2.log" 2>&1 || fail "quick2"
both=$(q "SELECT count(*) FROM dataset_members a JOIN dataset_members b ON a.clip_id = b.clip_id JOIN datasets da ON da.id = a.dataset_id JOIN datasets db ON db.id = b.dataset_id WHERE da.name = 'quick' AND db.name = 'quick2'")
[ "$both" -eq "$members" ] || fail "same recipe, same seed should give the same clips ($both vs $members)"
nst=$(q "SELECT count(*) FROM clip_stats")
"$BIN/curate" --workspace "$WS" --recipe pipelines/recipes/quick.recipe >"$OUT/ds3.log" 2>&1 || fail "rebuild"
[ "$(q "SELECT count(*) FROM clip_stats")" -eq "$nst" ] || fail "rebuild changed statistics"
ls "$WS"/datasets/quick/frames-*.safetensors >/dev/null || fail "no shards"

# The same data curated with another worker count (clip ids then come in another order) gives
# the same dataset: members and their splits follow the recipe's seed and the clips' content.
WS1="$OUT/ws1"
rm -rf "$WS1"
"$BIN/curate" --manifest "$C/manifest.csv" --workspace "$WS1" --workers 1 >"$OUT/ws1.log" 2>&1 || true
"$BIN/curate" --workspace "$WS1" --recipe pipelines/recipes/quick.recipe >"$OUT/ws1ds.log" 2>&1 || fail "dataset in ws1"
members_sql="SELECT s.path || ' ' || m.split FROM dataset_members m JOIN datasets d ON d.id = m.dataset_id JOIN clips c ON c.id = m.clip_id JOIN sources s ON s.id = c.source_id WHERE d.name = 'quick' ORDER BY s.path"
a=$("$BIN/catalogue" --workspace "$WS" --csv sql "$members_sql" | md5sum)
b=$("$BIN/catalogue" --workspace "$WS1" --csv sql "$members_sql" | md5sum)
[ "$a" = "$b" ] || fail "dataset membership depends on the worker count"

# Previews and report.
png="$WS/reports/quick-sheet.png"
gif="$WS/reports/quick-preview.gif"
[ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "no PNG contact sheet"
[ "$(head -c 6 "$gif")" = GIF89a ] || fail "no GIF preview"
grep -q "Rejected files" "$WS/reports/curate.html" || fail "no HTML report"
grep -q "outside.mp4" "$WS/reports/curate.html" || fail "report lacks the rejected files"

# The checker runs on the result (tiny corpus: numbers are not judged here).
"$BIN/flawcheck" --truth "$C/truth.jsonl" --workspace "$WS" >"$OUT/flawcheck.txt" 2>&1 || fail "flawcheck"
cat "$OUT/flawcheck.txt"
grep -q "wrong_caption.*pending" "$OUT/flawcheck.txt" || fail "wrong caption row missing"
echo "ok"
