#!/bin/sh
# tests/test_encode.sh — bin/pretrain --model vae and bin/encode on a small built-in corpus:
# a short VAE run (bounded steps) and a text encoder (the clip reward model, --quick); encode
# caches latents and caption embeddings for every clip; a rerun encodes nothing (idempotent);
# a retrained VAE makes the latents stale, and only they are encoded again; a damaged shard is
# refused by the reader with a message naming the clip; a VAE training killed with -9 resumes
# from its training state when rerun.
set -u
BUILD=${BUILD:-build}
BIN=${BIN:-bin}
OUT=${TURBO_TEST_OUT:-$BUILD/test-out/test_encode}
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$BIN/encode" ] && [ -x "$BIN/pretrain" ] || { echo "skip: bin/encode or bin/pretrain not built"; exit 77; }
rm -rf "$OUT"; mkdir -p "$OUT"
C="$OUT/corpus"; WS="$OUT/ws"
export TURBO_NO_TTY=1
"$BIN/synth" --clips 24 --seed 5 --out "$C" --workspace "$WS" --workers 2 >"$OUT/synth.log" 2>&1 || fail "synth: $(tail -3 "$OUT/synth.log")"
"$BIN/curate" --manifest "$C/manifest.csv" --workspace "$WS" --workers 2 >"$OUT/curate.log" 2>&1 || fail "curate: $(tail -3 "$OUT/curate.log")"
"$BIN/curate" --workspace "$WS" --recipe pipelines/recipes/rewards.recipe >"$OUT/rec.log" 2>&1 || fail "recipe: $(tail -3 "$OUT/rec.log")"
D="--dataset rewards --workspace $WS --threads 1"
"$BIN/pretrain" --model vae $D --quick --steps 6 --save-every 3 >"$OUT/vae1.log" 2>&1 || fail "vae: $(tail -3 "$OUT/vae1.log")"
grep -q "val: .* PSNR" "$OUT/vae1.log" || fail "no val PSNR in the VAE log"
"$BIN/pretrain" --model clip $D --quick --steps 3 >"$OUT/clip.log" 2>&1 || fail "clip: $(tail -3 "$OUT/clip.log")"
DB="$WS/catalogue.db"
[ -f "$DB" ] || DB=$(ls "$WS"/*.db 2>/dev/null | head -1)
q() { sqlite3 "$DB" "$1"; }
"$BIN/encode" $D >"$OUT/enc1.log" 2>&1 || fail "encode: $(tail -3 "$OUT/enc1.log")"
nclips=$(sed -n 's/.*dataset rewards: \([0-9]*\) clips.*/\1/p' "$OUT/enc1.log")
[ -n "$nclips" ] && [ "$nclips" -gt 1 ] || fail "no clip count in the encode log"
nlat=$(q "select count(*) from tensors where kind = 'latent' and variant = 'mean'")
ntok=$(q "select count(*) from tensors where kind like 'text_%'")
echo "clips $nclips, latents $nlat, text tensors $ntok"
[ "$nlat" = "$nclips" ] || fail "$nlat latents for $nclips clips"
[ "$ntok" = "$((4 * nclips))" ] || fail "$ntok text tensors for $nclips clips (want 4 each)"
shape=$(q "select shape from tensors where kind = 'latent' limit 1")
[ "$shape" = "[16,4,16,16]" ] || fail "latent shape $shape"
# rerun: nothing to do
"$BIN/encode" $D >"$OUT/enc2.log" 2>&1 || fail "encode rerun: $(tail -3 "$OUT/enc2.log")"
grep -q "nothing to do" "$OUT/enc2.log" || fail "a rerun encoded again: $(grep need "$OUT/enc2.log")"
# a retrained VAE: the latents are stale, the text is not
"$BIN/pretrain" --model vae $D --quick --steps 2 --force --seed 9 >"$OUT/vae2.log" 2>&1 || fail "vae retrain"
"$BIN/encode" $D >"$OUT/enc3.log" 2>&1 || fail "encode after retrain: $(tail -3 "$OUT/enc3.log")"
grep "need" "$OUT/enc3.log"
grep -q "$nclips need latents (mean), 0 need caption" "$OUT/enc3.log" || fail "staleness: $(grep need "$OUT/enc3.log")"
nlat=$(q "select count(*) from tensors where kind = 'latent'")
[ "$nlat" = "$nclips" ] || fail "$nlat latent rows after the re-encode (want $nclips: replaced, not added)"
# sampled latents are another variant
"$BIN/encode" $D --latent sample --seed 3 --no-text >"$OUT/enc4.log" 2>&1 || fail "encode sample"
[ "$(q "select count(*) from tensors where variant = 'sample'")" = "$nclips" ] || fail "sample latents"
# the reader: every latent reads back; a damaged shard is refused naming the clip
TURBO_ENC_CACHE_WS="$WS" "$BUILD/tests/test_enc_cache" >"$OUT/read.log" 2>&1 || fail "reader: $(tail -3 "$OUT/read.log")"
cat "$OUT/read.log"
# kill -9 during a --force retrain (after its first training state), rerun: it resumes
"$BIN/pretrain" --model vae $D --quick --steps 12 --save-every 3 --force >"$OUT/vae3.log" 2>&1 &
P=$!
i=0
while [ ! -f "$WS/models/vae.state.safetensors" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
kill -9 $P 2>/dev/null; wait $P 2>/dev/null
"$BIN/pretrain" --model vae $D --quick --steps 12 --save-every 3 >"$OUT/vae4.log" 2>&1 || fail "resume run"
grep "resuming from" "$OUT/vae4.log" || fail "the rerun after kill -9 did not resume: $(tail -3 "$OUT/vae4.log")"
grep -q "trained in" "$OUT/vae4.log" || fail "the resumed run did not finish"
echo "ok"
