#!/bin/sh
# turbo — compose stages into pipelines, or run one stage alone.
#
#   ./run.sh                      the default pipeline on the built-in world
#   ./run.sh PIPELINE [ARGS…]     a pipeline from pipelines/PIPELINE.sh
#   ./run.sh STAGE [ARGS…]        one stage alone: bin/STAGE --workspace $TURBO_WORKSPACE ARGS…
#   ./run.sh --help               pipelines and stages
#
# Environment: TURBO_WORKSPACE (default runs/default) holds the catalogue, data, reports and
# service sockets of one run; TURBO_BIN (default bin) where the stages are.
set -u
cd "$(dirname "$0")" || exit 1
. pipelines/lib.sh

usage() {
  cat <<USAGE
usage: ./run.sh [PIPELINE | STAGE] [ARGS…]

With no arguments, runs the 'default' pipeline in \$TURBO_WORKSPACE (now: $TURBO_WORKSPACE).

pipelines (pipelines/*.sh):
USAGE
  for p in pipelines/*.sh; do
    n=$(basename "$p" .sh)
    [ "$n" = lib ] && continue
    printf '  %-14s %s\n' "$n" "$(sed -n 's/^# summary: //p' "$p" | head -1)"
  done
  echo
  echo "stages (bin/*, each with --help):"
  for d in stages/*/; do
    n=$(basename "$d")
    s=$(sed -n 's|^/\* *stages/[a-z_]*/main.c *— *\(.*\)|\1|p' "$d/main.c" 2>/dev/null | head -1)
    printf '  %-14s %s\n' "$n" "${s:-}"
  done
  cat <<USAGE

examples:
  ./run.sh                              synth → curate → tailored datasets → report
  ./run.sh quick                        the same at test size, in a minute or two
  ./run.sh curate --workers 2           rerun curation alone (does only what is missing)
  ./run.sh catalogue tables             what the catalogue holds
  TURBO_WORKSPACE=runs/ablation ./run.sh  a second, independent run
USAGE
}

ensure_built() {
  if [ ! -x "$TURBO_BIN/$1" ]; then
    say "building ($TURBO_BIN/$1 is missing)"
    make -s stages >&2 || { say "build failed"; exit 1; }
  fi
}

trap 'services_stop' EXIT
trap 'say "interrupted"; services_stop; exit 130' INT TERM

target=${1:-default}
case "$target" in
  -h|--help|help) usage; exit 0 ;;
esac
[ $# -gt 0 ] && shift

if [ -f "pipelines/$target.sh" ] && [ "$target" != lib ]; then
  ensure_built curate
  say "pipeline $target in workspace $TURBO_WORKSPACE"
  mkdir -p "$TURBO_WORKSPACE"
  . "pipelines/$target.sh"
  pipeline_main "$@"
  rc=$?
  services_stop
  exit $rc
fi

if [ -d "stages/$target" ]; then
  ensure_built "$target"
  mkdir -p "$TURBO_WORKSPACE"
  exec "$TURBO_BIN/$target" --workspace "$TURBO_WORKSPACE" "$@"
fi

say "unknown pipeline or stage '$target'"
usage >&2
exit 2
