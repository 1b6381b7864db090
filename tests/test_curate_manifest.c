/* tests/test_curate_manifest.c — manifest reading (CSV and JSONL, malformed rows), recipes and
 * caption statistics of bin/curate's modules. Links the stage's sources directly. */
#include "common/log.h"
#include "tests/testutil.h"

#include "stages/curate/flaws.c"
#include "stages/curate/manifest.c"
#include "stages/curate/recipe.c"
#include "stages/curate/stats.c"

static int has_issue(const manifest *m, int line, const char *needle) {
  for (int i = 0; i < m->nissues; i++)
    if (m->issues[i].line == line && strstr(m->issues[i].reason, needle)) return 1;
  return 0;
}

static const manifest_row *row_at(const manifest *m, int line) {
  for (int i = 0; i < m->n; i++)
    if (m->rows[i].line == line) return &m->rows[i];
  return NULL;
}

int main(void) {
  test_begin("test_curate_manifest");
  manifest m;

  /* CSV: WebVid-like header, a good row, then every kind of bad row, then good rows again. */
  const char csv[] =
      "videoid,contentUrl,duration,page_dir,name,short_caption\n"          /* 1 */
      "1,videos/a.mp4,2.0,x,a red circle moves left,a red circle\n"         /* 2 */
      "2,videos/b.mp4,2.0,x\n"                                              /* 3: too few */
      "3,videos/c.mp4,2.0,x,\"a \"\"quoted\"\" caption, with comma\",s\n"   /* 4: ok */
      "4,videos/d.mp4,2.0,x,\"never closed,s\n"                             /* 5: broken */
      "5,videos/e.mp4,2.0,x,bad \xff\xfe bytes,s\n"                         /* 6: not UTF-8 */
      "6,,2.0,x,empty path,s\n"                                             /* 7 */
      "7,videos/g.mp4,2.0,x,stray \"quote here,s\n"                         /* 8 */
      "8,videos/h.mp4,2.0,x,\"closed\"junk,s\n"                             /* 9 */
      "\n"                                                                  /* 10: blank */
      "9,videos/i.mp4,2.0,x,\"multi\nline caption\",s\n"                    /* 11-12 */
      "10,videos/j.mp4,2.0,x,last one,s\r\n";                               /* 13 */
  CHECK(manifest_parse(csv, sizeof csv - 1, 0, &m) == TB_OK);
  CHECKF(m.n == 4, "rows %d", m.n); /* lines 2, 4, 11-12 and 13 */
  CHECK(row_at(&m, 2) && strcmp(row_at(&m, 2)->path, "videos/a.mp4") == 0);
  CHECK(row_at(&m, 2) && strcmp(row_at(&m, 2)->id, "1") == 0);
  CHECK(row_at(&m, 2) && row_at(&m, 2)->short_caption && strcmp(row_at(&m, 2)->short_caption, "a red circle") == 0);
  CHECK(row_at(&m, 4) && strcmp(row_at(&m, 4)->caption, "a \"quoted\" caption, with comma") == 0);
  CHECK(row_at(&m, 11) && strcmp(row_at(&m, 11)->caption, "multi\nline caption") == 0);
  CHECK(row_at(&m, 13) && strcmp(row_at(&m, 13)->short_caption, "s") == 0);
  CHECK(has_issue(&m, 3, "line 3: 4 fields"));
  CHECK(has_issue(&m, 5, "line 5"));
  CHECK(has_issue(&m, 6, "not valid UTF-8"));
  CHECK(has_issue(&m, 7, "empty video path"));
  CHECK(has_issue(&m, 8, "stray quote"));
  CHECK(has_issue(&m, 9, "closing quote"));
  for (int i = 0; i < m.nissues; i++) log_info("issue: %s", m.issues[i].reason);
  manifest_free(&m);

  /* A path named again: the first row wins, each repeat is an issue naming the first line. */
  const char dup[] =
      "path,caption\n"           /* 1 */
      "videos/a.mp4,first a\n"   /* 2 */
      "videos/b.mp4,first b\n"   /* 3 */
      "videos/a.mp4,again a\n"   /* 4 */
      "videos/c.mp4,c\n"         /* 5 */
      "videos/b.mp4,again b\n"   /* 6 */
      "videos/a.mp4,a third\n";  /* 7 */
  CHECK(manifest_parse(dup, sizeof dup - 1, 0, &m) == TB_OK);
  CHECKF(m.n == 3 && m.rows[0].line == 2 && m.rows[1].line == 3 && m.rows[2].line == 5,
         "rows after duplicates: %d", m.n);
  CHECK(strcmp(m.rows[0].caption, "first a") == 0 && strcmp(m.rows[1].caption, "first b") == 0);
  CHECK(has_issue(&m, 4, "line 4: duplicate of line 2 (videos/a.mp4)"));
  CHECK(has_issue(&m, 6, "line 6: duplicate of line 3 (videos/b.mp4)"));
  CHECK(has_issue(&m, 7, "line 7: duplicate of line 2"));
  manifest_free(&m);
  /* many rows, each path three times, the repeats far from the first: the same answer */
  {
    int np = 20000;
    json_buf b = {0};
    json_buf_puts(&b, "path,caption\n");
    for (int rep = 0; rep < 3; rep++)
      for (int i = 0; i < np; i++) json_buf_printf(&b, "v/%d.mp4,c%d\n", (i * 7919) % np, rep);
    double t0 = time_now();
    CHECK(manifest_parse(b.data, b.len, 0, &m) == TB_OK);
    printf("duplicates: %d rows, %d kept, %d issues in %.3f s\n", 3 * np, m.n, m.nissues, time_now() - t0);
    CHECK(m.n == np && m.nissues == 2 * np);
    CHECK(m.n == np && strcmp(m.rows[np - 1].caption, "c0") == 0);
    CHECK(has_issue(&m, 2 + 2 * np, "duplicate of line 2 (v/0.mp4)"));
    manifest_free(&m);
    json_buf_free(&b);
  }

  /* Missing columns: the whole manifest is refused with a message. */
  const char nocap[] = "path,duration\nvideos/a.mp4,2\n";
  CHECK(manifest_parse(nocap, sizeof nocap - 1, 0, &m) == TB_ERR);
  CHECK(strstr(err_get(), "caption") != NULL);
  manifest_free(&m);
  const char nopath[] = "caption\nhello\n";
  CHECK(manifest_parse(nopath, sizeof nopath - 1, 0, &m) == TB_ERR);
  CHECK(strstr(err_get(), "path") != NULL);
  manifest_free(&m);
  CHECK(manifest_parse("", 0, 0, &m) == TB_ERR);
  manifest_free(&m);

  /* JSONL. */
  const char jl[] =
      "{\"path\": \"videos/a.mp4\", \"caption\": \"one\", \"videoid\": 7}\n"
      "{\"path\": \"videos/b.mp4\"}\n"
      "not json\n"
      "[1, 2]\n"
      "{\"path\": \"videos/c.mp4\", \"caption\": \"bad \xc3\x28\"}\n"
      "\n"
      "{\"video\": \"videos/d.mp4\", \"text\": \"four\", \"short_caption\": \"4\"}\n";
  CHECK(manifest_parse(jl, sizeof jl - 1, 1, &m) == TB_OK);
  CHECKF(m.n == 2, "jsonl rows %d", m.n);
  CHECK(row_at(&m, 1) && strcmp(row_at(&m, 1)->id, "7") == 0);
  CHECK(row_at(&m, 7) && strcmp(row_at(&m, 7)->caption, "four") == 0);
  CHECK(has_issue(&m, 2, "caption"));
  CHECK(has_issue(&m, 3, "line 3: bad JSON"));
  CHECK(has_issue(&m, 4, "expected a JSON object"));
  CHECK(has_issue(&m, 5, "UTF-8"));
  manifest_free(&m);

  /* UTF-8 validator. */
  CHECK(utf8_valid("caf\xc3\xa9", 5));
  CHECK(!utf8_valid("\xc0\xaf", 2));          /* overlong */
  CHECK(!utf8_valid("\xed\xa0\x80", 3));      /* surrogate */
  CHECK(!utf8_valid("\xf4\x90\x80\x80", 4));  /* > U+10FFFF */

  /* Recipes. */
  recipe r;
  const char good[] = "name t\nseed 5\nval_fraction 0.2\nfilter flaw_any == 0\n"
                      "learned text_video_score >= 0.3\nsubset a weight 2 # comment\n"
                      "where motion_mag >= 0.5\nsubset b weight 1\nwhere caption_words < 12\n";
  CHECK(recipe_parse(good, "good", &r) == TB_OK);
  CHECK(strcmp(r.name, "t") == 0 && r.seed == 5 && r.val_fraction == 0.2);
  CHECK(r.ncond == 2 && r.cond[1].learned == 1 && r.nsubset == 2);
  CHECK(r.subset[0].weight == 2 && r.subset[0].ncond == 1 && r.subset[0].cond[0].op == RECIPE_GE);
  CHECK(recipe_cond_test(&r.subset[1].cond[0], 11) && !recipe_cond_test(&r.subset[1].cond[0], 12));
  recipe_free(&r);
  const char *bad[] = {"where x > 1\n",                 "filter x >> 1\n",
                       "subset a weight 0\n",           "val_fraction 2\n",
                       "name ok\nfilter x > abc\n",      "frobnicate 1\n",
                       "subset a weight 1\nsubset a weight 1\n", NULL};
  const int bad_line[] = {1, 1, 1, 1, 2, 1, 2};
  for (int i = 0; bad[i]; i++) {
    CHECKF(recipe_parse(bad[i], "bad", &r) == TB_ERR, "recipe %d should fail", i);
    char want[32];
    snprintf(want, sizeof want, "bad:%d:", bad_line[i]);
    CHECKF(strstr(err_get(), want) != NULL, "recipe %d: message '%s' lacks '%s'", i, err_get(), want);
    recipe_free(&r);
  }
  CHECK(recipe_load("pipelines/recipes/tailored.recipe", &r) == TB_OK);
  CHECK(r.nsubset == 2 && strcmp(r.subset[0].name, "distill") == 0);
  recipe_free(&r);
  CHECK(recipe_load("pipelines/recipes/quick.recipe", &r) == TB_OK);
  recipe_free(&r);

  /* Caption statistics. */
  clip_stats cs;
  memset(&cs, 0, sizeof cs);
  clip_stats_caption("a small white ring does not move in front of a checkered background", &cs);
  CHECK(clip_stats_get(&cs, "caption_words", 0) == 13);
  CHECK(clip_stats_get(&cs, "caption_motion", -1) == 0);
  CHECK(clip_stats_get(&cs, "caption_still", -1) == 1);
  memset(&cs, 0, sizeof cs);
  clip_stats_caption("a red a red circle glides slowly to the left, as the camera pans slowly to the left", &cs);
  CHECK(clip_stats_get(&cs, "caption_motion", -1) == 1);
  CHECK(clip_stats_get(&cs, "caption_pan_follow", -1) == 1);
  CHECK(clip_stats_get(&cs, "caption_distinct", 0) < clip_stats_get(&cs, "caption_words", 0));
  memset(&cs, 0, sizeof cs);
  clip_stats_caption("a blue square moves up while the camera pans right", &cs);
  CHECK(clip_stats_get(&cs, "caption_pan_follow", -1) == 0);

  /* Flaw rules on hand-made statistics. */
  memset(&cs, 0, sizeof cs);
  clip_stats_set(&cs, "caption_motion", 1);
  clip_stats_set(&cs, "static_score", 0.5);
  clip_stats_set(&cs, "static_score_full", 0.5);
  clip_stats_set(&cs, "flow_mean", 0.01);
  clip_stats_set(&cs, "flicker", 0.2);
  clip_stats_set(&cs, "edge_width", 0.6);
  flaws_detect(&cs);
  CHECK(clip_stats_get(&cs, "flaw_static", 0) == 1 && clip_stats_get(&cs, "flaw_flicker", 0) == 1);
  CHECK(clip_stats_get(&cs, "flaw_lowq", 1) == 0 && clip_stats_get(&cs, "flaw_any", 0) == 1);
  /* A NUL inside a CSV field is a bad line, never a silently shortened caption. */
  {
    static const char nul[] = "path,caption\na.mp4,cut\0 here\nb.mp4,fine\n";
    CHECK(manifest_parse(nul, sizeof nul - 1, 0, &m) == TB_OK);
    CHECKF(m.n == 1 && strcmp(m.rows[0].path, "b.mp4") == 0, "%d rows", m.n);
    CHECKF(m.nissues == 1 && strstr(m.issues[0].reason, "line 2: NUL byte inside field 2"),
           "issue: %s", m.nissues ? m.issues[0].reason : "(none)");
    manifest_free(&m);
  }
  return test_finish();
}
