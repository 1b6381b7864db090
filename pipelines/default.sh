# summary: built-in world: synth → curate → reward models → tailored datasets (distill + reward halves) → VAE → encode → report
#
# The start of T2V-Turbo-v2's pipeline on the built-in world: a 2,000-clip raw corpus with real
# flaws, curated into the catalogue, and the tailored datasets the later stages train on.
# Arguments after the pipeline name go to bin/synth (e.g. --clips 500 --seed 7).
pipeline_main() {
  clips=${TURBO_CLIPS:-2000}
  workers=${TURBO_WORKERS:-$(nproc 2>/dev/null || echo 2)}
  corpus="$TURBO_WORKSPACE/corpus"
  stage synth --clips "$clips" --workers "$workers" "$@"
  stage curate --manifest "$corpus/manifest.csv" --root "$corpus" --workers "$workers"
  # The reward models (image-text, image quality, video-text) learn from the clean clips; the
  # video model then scores every clip, and the tailored recipe's learned filter drops the clips
  # whose caption it does not believe (wrong captions).
  stage curate --recipe pipelines/recipes/rewards.recipe
  stage pretrain --model clip --dataset rewards
  stage pretrain --model quality --dataset rewards
  stage pretrain --model video --dataset rewards
  stage curate --recipe pipelines/recipes/tailored.recipe
  stage curate --recipe pipelines/recipes/motion.recipe
  # The frame VAE learns from the tailored clips' frames; then every tailored clip gets its
  # latents and caption embeddings (text tower of the clip model) cached for the teacher.
  stage pretrain --model vae --dataset tailored
  stage encode --dataset tailored
  # The built-in world knows its truth: score the flaw detectors against it (evaluation only;
  # curation itself never reads truth.jsonl).
  stage flawcheck --truth "$corpus/truth.jsonl"
  pipeline_summary
  say "catalogue: $TURBO_WORKSPACE/catalogue.db   (./run.sh catalogue tables)"
  say "report:    $TURBO_WORKSPACE/reports/curate.html"
  say "datasets:  $("$TURBO_BIN/catalogue" --workspace "$TURBO_WORKSPACE" --csv sql \
    "SELECT name || ' (' || count(m.clip_id) || ' members)' FROM datasets d LEFT JOIN dataset_members m ON m.dataset_id = d.id GROUP BY d.id ORDER BY d.name" 2>/dev/null | tail -n +2 | tr '\n' ' ')"
  say "reward models: $TURBO_WORKSPACE/models/reward-{clip,quality,video}.safetensors (./run.sh reward --model NAME serves one)"
  say "VAE: $TURBO_WORKSPACE/models/vae.safetensors; latents and caption embeddings: $TURBO_WORKSPACE/cache/"
}
