-- schemas/catalogue.sql — the turbo workspace catalogue (SQLite, DIR/catalogue.db).
--
-- This file is the list of schema migrations. Each one starts with a line
--   -- @migration N: what it does
-- and runs up to the next such line. common/catalogue.c compiles this file in, and on open
-- applies every migration with N > PRAGMA user_version in order, in one BEGIN IMMEDIATE
-- transaction, then sets user_version to the last N. Never edit an applied migration: append
-- a new one (ALTER TABLE, new tables, data fixes) and raise CATALOGUE_SCHEMA_VERSION.
-- make does not see this file as a dependency: after an edit, `touch common/catalogue.c`
-- (tests/test_catalogue fails on a build whose compiled-in text differs from this file).
--
-- Conventions: times are REAL seconds since the Unix epoch (datetime(t, 'unixepoch') shows
-- them); ids named in files and logs (sources, clips, runs, datasets, models, checkpoints) are
-- AUTOINCREMENT so a deleted id is never handed out again; checksums are lower-case hex TEXT;
-- paths of workspace files are relative to the workspace folder; optional references are NULL. Deleting a row cascades to what was derived
-- from it (source -> clips -> statistics, memberships, cached tensors); deleting a run keeps
-- the artefacts it made (their run_id becomes NULL) but drops its metrics and scores.

-- @migration 1: initial schema

-- Source videos named by a manifest, with what probing found.
CREATE TABLE sources (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  path          TEXT NOT NULL UNIQUE,
  size          INTEGER NOT NULL DEFAULT 0,         -- bytes
  mtime         INTEGER NOT NULL DEFAULT 0,         -- seconds since the epoch
  checksum      TEXT,
  container     TEXT,
  codec         TEXT,
  width         INTEGER,
  height        INTEGER,
  fps           REAL,
  frames        INTEGER,
  duration      REAL,                               -- seconds
  status        TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'rejected')),
  reason        TEXT,                               -- why it was rejected
  manifest_line TEXT,
  caption_long  TEXT,
  caption_short TEXT,
  updated       REAL NOT NULL,
  CHECK (status = 'ok' OR reason IS NOT NULL)
);
CREATE INDEX sources_status ON sources(status);

-- Clips cut from sources and resampled to a target fps and size.
CREATE TABLE clips (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  source_id     INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
  start_s       REAL NOT NULL,                      -- seconds in the source
  end_s         REAL NOT NULL,
  fps           REAL NOT NULL,                      -- target
  width         INTEGER NOT NULL,
  height        INTEGER NOT NULL,
  frames        INTEGER NOT NULL,
  caption_long  TEXT,                               -- NULL: the source's
  caption_short TEXT,
  created       REAL NOT NULL,
  CHECK (end_s >= start_s AND fps > 0 AND width > 0 AND height > 0 AND frames >= 0),
  UNIQUE (source_id, start_s, end_s, fps, width, height)
);

-- Per-clip statistics as (clip, name, value): new statistics need no migration.
CREATE TABLE clip_stats (
  clip_id       INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
  name          TEXT NOT NULL,
  value         REAL,
  PRIMARY KEY (clip_id, name)
) WITHOUT ROWID;
CREATE INDEX clip_stats_name ON clip_stats(name, value);

-- Stage runs: one row per process start.
CREATE TABLE runs (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  stage         TEXT NOT NULL,
  args          TEXT NOT NULL DEFAULT '',           -- argv joined, shell-quoted
  host          TEXT NOT NULL,
  pid           INTEGER NOT NULL,
  pid_start     INTEGER,                            -- process start (clock ticks after boot)
  started       REAL NOT NULL,
  ended         REAL,
  status        TEXT NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
  message       TEXT
);
CREATE INDEX runs_status ON runs(status, host);
CREATE INDEX runs_stage ON runs(stage, started);

-- Named, tailored datasets (a recipe applied to the clips).
CREATE TABLE datasets (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  name          TEXT NOT NULL UNIQUE,
  recipe        TEXT,
  created       REAL NOT NULL,
  status        TEXT NOT NULL DEFAULT 'building'
                CHECK (status IN ('building', 'ready', 'failed', 'stale')),
  run_id        INTEGER REFERENCES runs(id) ON DELETE SET NULL
);

CREATE TABLE dataset_members (
  dataset_id    INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  clip_id       INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
  subset        TEXT NOT NULL DEFAULT '',           -- 'distill', 'reward', … ('' = none)
  split         TEXT NOT NULL CHECK (split IN ('train', 'val')),
  PRIMARY KEY (dataset_id, clip_id, subset)
) WITHOUT ROWID;
CREATE INDEX dataset_members_clip ON dataset_members(clip_id);

-- A dataset that loses a member because its clip was deleted no longer matches its recipe.
CREATE TRIGGER dataset_members_lost AFTER DELETE ON dataset_members
BEGIN
  UPDATE datasets SET status = 'stale' WHERE id = OLD.dataset_id AND status <> 'stale';
END;

-- Models (trained or imported) and their checkpoints.
CREATE TABLE models (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  name          TEXT NOT NULL UNIQUE,
  family        TEXT NOT NULL,
  config        TEXT,
  run_id        INTEGER REFERENCES runs(id) ON DELETE SET NULL,
  created       REAL NOT NULL
);

CREATE TABLE checkpoints (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  model_id      INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
  step          INTEGER NOT NULL,
  path          TEXT NOT NULL,
  checksum      TEXT,
  run_id        INTEGER REFERENCES runs(id) ON DELETE SET NULL,
  created       REAL NOT NULL,
  UNIQUE (model_id, step)
);

-- Cached tensors in files beside the catalogue (latents, text embeddings, motion references,
-- guidance scores, decoded frames). Belongs to a clip or a dataset (or neither).
-- The key (kind, clip, dataset, model, variant) is unique; NULLs count as equal there.
CREATE TABLE tensors (
  id            INTEGER PRIMARY KEY,
  kind          TEXT NOT NULL,
  clip_id       INTEGER REFERENCES clips(id) ON DELETE CASCADE,
  dataset_id    INTEGER REFERENCES datasets(id) ON DELETE CASCADE,
  model_id      INTEGER REFERENCES models(id) ON DELETE CASCADE,
  variant       TEXT NOT NULL DEFAULT '',
  path          TEXT NOT NULL,
  offset        INTEGER NOT NULL DEFAULT 0 CHECK (offset >= 0),   -- bytes
  nbytes        INTEGER NOT NULL CHECK (nbytes >= 0),
  dtype         TEXT NOT NULL,                                    -- 'F32', 'BF16', 'U8', …
  shape         TEXT NOT NULL,                                    -- '[1,16,4,16,16]'
  checksum      TEXT,
  created       REAL NOT NULL
);
CREATE UNIQUE INDEX tensors_key ON tensors(kind, ifnull(clip_id, 0), ifnull(dataset_id, 0),
                                           ifnull(model_id, 0), variant);
CREATE INDEX tensors_clip ON tensors(clip_id);
CREATE INDEX tensors_dataset ON tensors(dataset_id);
CREATE INDEX tensors_model ON tensors(model_id);

-- Training curves.
CREATE TABLE metrics (
  run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step          INTEGER NOT NULL,
  name          TEXT NOT NULL,
  value         REAL,
  PRIMARY KEY (run_id, name, step)
) WITHOUT ROWID;

-- Evaluation scores: per prompt or clip, or a suite aggregate (prompt and clip NULL).
CREATE TABLE scores (
  id            INTEGER PRIMARY KEY,
  run_id        INTEGER REFERENCES runs(id) ON DELETE CASCADE,
  model_id      INTEGER REFERENCES models(id) ON DELETE CASCADE,
  checkpoint_id INTEGER REFERENCES checkpoints(id) ON DELETE SET NULL,
  suite         TEXT NOT NULL,
  dimension     TEXT NOT NULL,
  prompt        TEXT,
  clip_id       INTEGER REFERENCES clips(id) ON DELETE SET NULL,
  value         REAL,
  created       REAL NOT NULL
);
CREATE INDEX scores_run ON scores(run_id, suite, dimension);
CREATE INDEX scores_model ON scores(model_id, suite, dimension);
CREATE INDEX scores_clip ON scores(clip_id);
CREATE INDEX scores_checkpoint ON scores(checkpoint_id);
CREATE INDEX checkpoints_run ON checkpoints(run_id);
CREATE INDEX models_run ON models(run_id);
CREATE INDEX datasets_run ON datasets(run_id);

-- @migration 2: samples of the sampling stages, evaluation runs and cached per-video results

-- Videos a sampling stage generated for a prompt suite (pipelines/prompts/*.jsonl): one row per
-- (model, checkpoint, suite, prompt, seed, sampler settings). bin/eval scores them by model,
-- checkpoint and suite.
CREATE TABLE samples (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  model_id      INTEGER REFERENCES models(id) ON DELETE CASCADE,
  checkpoint_id INTEGER REFERENCES checkpoints(id) ON DELETE SET NULL,
  suite         TEXT NOT NULL,                      -- 'vbench', 'compbench', 'heldout', …
  prompt_id     TEXT NOT NULL,                      -- the "id" of the prompt's line
  seed          INTEGER NOT NULL,
  steps         INTEGER NOT NULL DEFAULT 0,         -- sampler steps (0 = not recorded)
  guidance      REAL NOT NULL DEFAULT 0,            -- CFG scale w
  motion_scale  REAL NOT NULL DEFAULT 0,            -- motion-guidance scale m
  path          TEXT NOT NULL,                      -- video file, relative to the workspace
  run_id        INTEGER REFERENCES runs(id) ON DELETE SET NULL,
  created       REAL NOT NULL
);
CREATE UNIQUE INDEX samples_key ON samples(ifnull(model_id, 0), ifnull(checkpoint_id, 0), suite,
                                           prompt_id, seed, steps, guidance, motion_scale);
CREATE INDEX samples_model ON samples(model_id, checkpoint_id, suite);
CREATE INDEX samples_checkpoint ON samples(checkpoint_id);
CREATE INDEX samples_run ON samples(run_id);

-- One row per bin/eval run: what it scored, under which label (--compare names runs by it).
CREATE TABLE eval_runs (
  run_id        INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
  label         TEXT NOT NULL,
  input         TEXT NOT NULL CHECK (input IN ('folder', 'dataset', 'samples')),
  suite         TEXT,                               -- prompt suite or dataset name
  model_id      INTEGER REFERENCES models(id) ON DELETE SET NULL,
  checkpoint_id INTEGER REFERENCES checkpoints(id) ON DELETE SET NULL,
  videos        INTEGER NOT NULL DEFAULT 0,         -- videos scored (readable ones)
  results       TEXT,                               -- results JSON, relative to the workspace
  created       REAL NOT NULL
);
CREATE INDEX eval_runs_label ON eval_runs(label, created);

-- What scoring one video found, kept so that a rerun scores only new videos: the key names
-- the scorer's version, the file's content and the truth it was scored against.
CREATE TABLE eval_videos (
  key           TEXT PRIMARY KEY,
  path          TEXT NOT NULL,
  result        TEXT NOT NULL,                      -- JSON: per-dimension values, the read
  created       REAL NOT NULL
) WITHOUT ROWID;

-- Scores gain the number of videos behind a value, the VBench-normalised value and the
-- sample a per-video row belongs to.
ALTER TABLE scores ADD COLUMN count INTEGER;
ALTER TABLE scores ADD COLUMN normalised REAL;
ALTER TABLE scores ADD COLUMN sample_id INTEGER REFERENCES samples(id) ON DELETE SET NULL;
CREATE INDEX scores_sample ON scores(sample_id);
