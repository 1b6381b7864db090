/* bench/bench_curate.c — bin/curate's throughput on large sources against a plain libav decode
 * of the same files, and the memory of one curate worker.
 *
 *   TURBO_BENCH_CURATE_DIR=/tmp/turbo-real-bench build/bench/bench_curate
 *
 * The folder holds manifest.csv and the videos it names (sh tools/make_real_fixtures.sh --set
 * bench writes 1080p ones there). "Plain decode" reads every packet and decodes every frame on
 * one thread with no conversion: the least any curation must do, since curate decodes every
 * packet to find damage (its default --full-check), also on one thread per worker. Curate runs
 * with --workers 1 --force into a fresh workspace; its time includes the catalogue writes. The
 * ratio is curate / plain; the peak RSS is of the whole curate process tree's largest member.
 * Prints "skipped" and exits 0 when the folder is missing.
 */
#include "common/log.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* Decodes every frame of path; returns frames, -1 on error. */
static long plain_decode(const char *path) {
  AVFormatContext *fmt = NULL;
  if (avformat_open_input(&fmt, path, NULL, NULL) < 0) return -1;
  if (avformat_find_stream_info(fmt, NULL) < 0) return -1;
  const AVCodec *codec = NULL;
  int si = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (si < 0 || !codec) return -1;
  AVCodecContext *dec = avcodec_alloc_context3(codec);
  avcodec_parameters_to_context(dec, fmt->streams[si]->codecpar);
  dec->thread_count = 1;
  if (avcodec_open2(dec, codec, NULL) < 0) return -1;
  AVPacket *pkt = av_packet_alloc();
  AVFrame *fr = av_frame_alloc();
  long n = 0;
  for (int eof = 0; !eof;) {
    if (av_read_frame(fmt, pkt) < 0) {
      eof = 1;
      avcodec_send_packet(dec, NULL);
    } else if (pkt->stream_index == si) {
      avcodec_send_packet(dec, pkt);
    }
    av_packet_unref(pkt);
    while (avcodec_receive_frame(dec, fr) == 0) {
      n++;
      av_frame_unref(fr);
    }
  }
  av_packet_free(&pkt);
  av_frame_free(&fr);
  avcodec_free_context(&dec);
  avformat_close_input(&fmt);
  return n;
}

int main(void) {
  log_init("bench_curate");
  av_log_set_level(AV_LOG_QUIET);
  const char *dir = getenv("TURBO_BENCH_CURATE_DIR");
  if (!dir) dir = "/tmp/turbo-real-bench";
  const char *bin = getenv("BIN") ? getenv("BIN") : "bin";
  char man[4096];
  snprintf(man, sizeof man, "%s/manifest.csv", dir);
  FILE *f = fopen(man, "r");
  if (!f) {
    printf("bench_curate: skipped (no %s; sh tools/make_real_fixtures.sh --set bench %s)\n", man, dir);
    return 0;
  }
  char line[4096];
  double t_plain = 0;
  long frames = 0;
  int files = 0;
  if (!fgets(line, sizeof line, f)) line[0] = 0; /* header */
  while (fgets(line, sizeof line, f)) {
    char *c = strchr(line, ',');
    if (!c) continue;
    *c = 0;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, line);
    double t0 = time_now();
    long n = plain_decode(path);
    t_plain += time_now() - t0;
    if (n < 0) {
      printf("bench_curate: cannot decode %s\n", path);
      fclose(f);
      return 1;
    }
    frames += n;
    files++;
  }
  fclose(f);
  char ws[] = "/tmp/bench_curate_ws_XXXXXX";
  if (!mkdtemp(ws)) return 1;
  char cmd[16384];
  snprintf(cmd, sizeof cmd, "%s/curate --manifest '%s' --root '%s' --workspace '%s' --workers 1 "
           "--force > '%s/curate.log' 2>&1", bin, man, dir, ws, ws);
  double t0 = time_now();
  int rc = system(cmd);
  double t_cur = time_now() - t0;
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  printf("bench_curate: %d files, %ld frames (%s)\n", files, frames, dir);
  printf("%-28s %9s %11s\n", "", "seconds", "frames/s");
  printf("%-28s %9.2f %11.0f\n", "plain libav decode", t_plain, frames / t_plain);
  printf("%-28s %9.2f %11.0f\n", "curate --workers 1", t_cur, frames / t_cur);
  printf("curate / plain decode: %.2fx; largest process peak RSS %.0f MiB; curate exit %d\n",
         t_cur / t_plain, ru.ru_maxrss / 1024.0, WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", ws);
  if (system(cmd) != 0) return 1;
  return 0;
}
