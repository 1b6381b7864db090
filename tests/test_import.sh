#!/bin/sh
# bin/import on the real-family fixtures (tests/fixtures/real/): a diffusers (ModelScope) folder
# with unet/, text_encoder/ and tokenizer/, and a VideoCrafter2 state dict; each must give
# turbo checkpoints (re-read and compared by bin/import) and catalogue model rows with a
# checkpoint; a checkpoint with a renamed tensor must be refused naming the tensor.
set -u
BIN=${BIN:-bin}
OUT=${TURBO_TEST_OUT:-build/test-out/test_import}
FIX=tests/fixtures/real
rm -rf "$OUT" && mkdir -p "$OUT"
fail=0
ck() { if eval "$1"; then echo "ok: $2"; else echo "FAIL: $2"; fail=1; fi; }

D="$OUT/modelscope-tiny"
mkdir -p "$D/unet" "$D/text_encoder" "$D/tokenizer"
cp "$FIX/diffusers_unet3d_config.json" "$D/unet/config.json"
cp "$FIX/diffusers_unet3d.safetensors" "$D/unet/diffusion_pytorch_model.safetensors"
cp "$FIX/hf_clip_text_config.json" "$D/text_encoder/config.json"
cp "$FIX/hf_clip_text.safetensors" "$D/text_encoder/model.safetensors"
cp "$FIX/clip_tokenizer/vocab.json" "$FIX/clip_tokenizer/merges.txt" "$D/tokenizer/"
WS="$OUT/ws"

"$BIN/import" --family diffusers --from "$D" --name ms --workspace "$WS" >"$OUT/ms.log" 2>&1
ck "[ $? -eq 0 ]" "diffusers folder imported"
ck "[ -s $WS/models/ms-unet.safetensors ] && [ -s $WS/models/ms-text.safetensors ]" "turbo checkpoints written"
"$BIN/import" --family vc2 --from "$FIX/vc2_unet.safetensors" --groups 8 --name vc2 --workspace "$WS" >"$OUT/vc2.log" 2>&1
ck "[ $? -eq 0 ]" "VideoCrafter2 state dict imported"
"$BIN/catalogue" --workspace "$WS" --csv models >"$OUT/models.csv" 2>&1
cat "$OUT/models.csv"
for m in ms-unet ms-text vc2-unet; do
  ck "grep -q '^[0-9]*,$m,' $OUT/models.csv || grep -q ',$m,' $OUT/models.csv" "catalogue model $m"
done
ck "grep -q 'text-encoder' $OUT/models.csv" "the text encoder's family"
"$BIN/catalogue" --workspace "$WS" --width 0 sql "SELECT name, config FROM models" >"$OUT/configs.txt" 2>&1
cat "$OUT/configs.txt"
# the layouts read from the files: the fixtures' tiny configurations
ck "grep 'vc2-unet' $OUT/configs.txt | grep -q '\"model_ch\":16,\"n_levels\":3,\"ch_mult\":\[1,2,2\],\"n_res\":1,\"attn_levels\":3,\"head_ch\":8,\"text_dim\":24'" "VideoCrafter2 layout inferred from the shapes"
ck "grep 'vc2-unet' $OUT/configs.txt | grep -q '\"temporal_conv_layers\":4,\"temporal_attn\":1,\"init_temporal\":1,\"init_heads\":8,\"fps_embed\":1'" "VideoCrafter2 family options"
ck "grep 'ms-unet' $OUT/configs.txt | grep -q '\"model_ch\":16,\"n_levels\":2,\"ch_mult\":\[1,2\],\"n_res\":1,\"attn_levels\":1,\"head_ch\":8,\"text_dim\":24,\"groups\":8'" "diffusers layout from config.json"
ck "grep 'ms-text' $OUT/configs.txt | grep -q '\"act\":1'" "the CLIP text config (quick GELU)"

# a renamed tensor is refused, naming it
python_free_rename() {
  # the same file with one tensor name changed in the JSON header (same length: bytes stay put)
  sed 's/down_blocks\.0\.temp_convs\.0\.conv3\.3\.weight/down_blocks.0.temp_convs.0.conv3.3.weighX/' "$1" >"$2"
}
B="$OUT/broken"
mkdir -p "$B/unet"
cp "$D/unet/config.json" "$B/unet/"
python_free_rename "$D/unet/diffusion_pytorch_model.safetensors" "$B/unet/diffusion_pytorch_model.safetensors"
"$BIN/import" --family diffusers --from "$B" --name broken --workspace "$WS" >"$OUT/broken.log" 2>&1
rc=$?
cat "$OUT/broken.log"
ck "[ $rc -eq 1 ]" "a renamed tensor: exit 1"
ck "grep -q 'down_blocks.0.temp_convs.0.conv3.3.weight is missing' $OUT/broken.log" "the message names the tensor"
ck "! grep -q broken-unet $OUT/models.csv && ! $BIN/catalogue --workspace $WS --csv models | grep -q broken-unet" "nothing recorded for it"
[ $fail -eq 0 ] && echo "test_import: passed" || echo "test_import: FAILED"
exit $fail
