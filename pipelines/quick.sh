# summary: the default pipeline at test size (a 40-clip corpus), in a minute or two
pipeline_main() {
  corpus="$TURBO_WORKSPACE/corpus"
  stage synth --quick "$@"
  stage curate --manifest "$corpus/manifest.csv" --root "$corpus" --workers 2
  stage curate --recipe pipelines/recipes/quick.recipe
  # a narrow VAE and text encoder, a few steps each, then the cached encodings
  stage pretrain --model vae --dataset quick --quick --steps 40
  stage pretrain --model clip --dataset quick --quick --steps 20
  stage encode --dataset quick
  # The built-in world knows its truth: score the flaw detectors against it (evaluation only;
  # curation itself never reads truth.jsonl).
  stage flawcheck --truth "$corpus/truth.jsonl"
  pipeline_summary
  say "report: $TURBO_WORKSPACE/reports/curate.html"
}
