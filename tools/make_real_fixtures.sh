#!/bin/sh
# tools/make_real_fixtures.sh — real-photo test footage for bin/curate: scikit-image's data
# photographs moved by camera pans and zooms (ffmpeg zoompan), with real-style flaws (white and
# dark semi-transparent text, a logo, blur, noise, flicker, a shot cut, a still shot, a whip
# pan, a 1 fps source resampled, a phone clip with a display matrix) and re-encodes of the same
# clips at 360/540/720/1080 px. Writes DIR/videos/*.mp4, DIR/manifest.csv and DIR/truth.jsonl
# (the bin/synth truth format, so bin/flawcheck reads it).
#
#   sh tools/make_real_fixtures.sh [--set small|full|bench] [DIR]
#
#   small (default, DIR tests/fixtures/real/footage): what the default tests read, a few hundred KB.
#   full: the same flaws on three photographs each at 640x360, 24 fps (precision/recall).
#   bench: 1080p sources, 4 s at 30 fps (throughput against a plain decode).
# Needs ffmpeg (with libx264 and drawtext) and python3 with scikit-image (pip install
# scikit-image). CI never runs this: the small set is checked in.
set -eu
SET=small
if [ "${1:-}" = "--set" ]; then SET=$2; shift 2; fi
case "$SET" in small) DIR=${1:-tests/fixtures/real/footage} ;; *) DIR=${1:-/tmp/turbo-real-$SET} ;; esac
IMG=$(python3 -c 'import os, skimage.data; print(os.path.dirname(skimage.data.__file__))')
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
[ -f "$FONT" ] || { echo "need $FONT (fonts-dejavu-core)"; exit 1; }
mkdir -p "$DIR/videos"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
case "$SET" in
  small) W=320; H=180; FPS=12; SECS=2.5; CRF=26 ;;
  full) W=640; H=360; FPS=24; SECS=3; CRF=23 ;;
  bench) W=1920; H=1080; FPS=30; SECS=4; CRF=20 ;;
  *) echo "unknown set $SET"; exit 2 ;;
esac
N=$(python3 -c "print(int(round($SECS * $FPS)))")
X264="-c:v libx264 -preset veryfast -pix_fmt yuv420p -crf $CRF -g $((FPS * 2)) -movflags +faststart -an"
MAN="$DIR/manifest.csv"
TRUTH="$DIR/truth.jsonl"
echo "path,caption" >"$MAN"
: >"$TRUTH"

row() { # path caption flaws...
  p=$1; c=$2; shift 2
  echo "$p,\"$c\"" >>"$MAN"
  fl=""
  for t in "$@"; do fl="$fl${fl:+,}{\"type\":\"$t\"}"; done
  echo "{\"path\":\"$p\",\"flaws\":[$fl]}" >>"$TRUTH"
}

# move IMG OUT MODE [W H] — a camera move over a photograph, N frames at FPS.
# MODE: pan (left to right), panv (top to bottom), zoom (in), whip (fast pan, 1/4 of the frame
# per frame in the middle second), still (no move).
move() {
  img=$1; out=$2; mode=$3; w=${4:-$W}; h=${5:-$H}
  # zoompan rounds its window to input pixels: work on an input 4x the output so pans are smooth.
  sw=$((w * 4))
  case "$mode" in
    pan) z="1.25"; x="(iw-iw/zoom)*on/($N-1)"; y="(ih-ih/zoom)/2" ;;
    panv) z="1.25"; x="(iw-iw/zoom)/2"; y="(ih-ih/zoom)*on/($N-1)" ;;
    zoom) z="1+0.4*on/($N-1)"; x="iw/2-(iw/zoom/2)"; y="ih/2-(ih/zoom/2)" ;;
    whip) z="2.0"; x="(iw-iw/zoom)*min(1,max(0,(on-$N/3)/($N/3)))"; y="(ih-ih/zoom)/2" ;;
    still) z="1.0"; x="0"; y="0" ;;
  esac
  ffmpeg -nostdin -loglevel error -y -i "$img" -vf "scale=$sw:$((sw * h / w)):force_original_aspect_ratio=increase,crop=$sw:$((sw * h / w)),zoompan=z='$z':x='$x':y='$y':d=$N:s=${w}x$h:fps=$FPS,setsar=1,format=yuv420p" \
    -frames:v "$N" $X264 "$out"
}

# flaw IN OUT FILTER — the same clip through one more filter.
flaw() { ffmpeg -nostdin -loglevel error -y -i "$1" -vf "$3" $X264 ${4:-} "$2"; }

wm_text() { # colour@alpha corner
  case "$2" in
    br) pos="x=w-tw-h*0.04:y=h-th-h*0.04" ;;
    tl) pos="x=h*0.04:y=h*0.04" ;;
    tr) pos="x=w-tw-h*0.04:y=h*0.04" ;;
  esac
  echo "drawtext=fontfile=$FONT:text='stockclips':fontsize=h*0.09:fontcolor=$1:$pos"
}

case "$SET" in
  small) PHOTOS="coffee" ;;
  full) PHOTOS="coffee rocket chelsea" ;;
  bench) PHOTOS="coffee astronaut rocket chelsea" ;;
esac

if [ "$SET" = bench ]; then
  i=0
  for ph in $PHOTOS; do
    for mode in pan zoom; do
      i=$((i + 1))
      f=$(ls "$IMG/$ph".* | head -1)
      move "$f" "$DIR/videos/b$i-$ph-$mode.mp4" "$mode"
      row "videos/b$i-$ph-$mode.mp4" "the camera moves across a $ph"
    done
  done
  echo "wrote $(($(wc -l <"$MAN") - 1)) clips to $DIR"; du -sh "$DIR"
  exit 0
fi

for ph in $PHOTOS; do
  f=$(ls "$IMG/$ph".* | head -1)
  case "$ph" in coffee) other=rocket ;; rocket) other=astronaut ;; *) other=coffee ;; esac
  g=$(ls "$IMG/$other".* | head -1)
  v="$DIR/videos"
  move "$f" "$v/$ph-pan.mp4" pan
  row "videos/$ph-pan.mp4" "the camera pans right across a $ph"
  move "$f" "$v/$ph-zoom.mp4" zoom
  row "videos/$ph-zoom.mp4" "the camera zooms in on a $ph"
  flaw "$v/$ph-pan.mp4" "$v/$ph-wm-white.mp4" "$(wm_text white@0.45 br)"
  row "videos/$ph-wm-white.mp4" "the camera pans right across a $ph" watermark
  move "$f" "$TMP/panv.mp4" panv
  flaw "$TMP/panv.mp4" "$v/$ph-wm-dark.mp4" "$(wm_text black@0.5 tl)"
  row "videos/$ph-wm-dark.mp4" "the camera moves down over a $ph" watermark
  ffmpeg -nostdin -loglevel error -y -i "$v/$ph-zoom.mp4" -i "$IMG/logo.png" -filter_complex \
    "[1]scale=-1:ih*0+$((H / 5)),format=rgba,colorchannelmixer=aa=0.5[l];[0][l]overlay=W-w-$((H / 20)):$((H / 20))" \
    $X264 "$v/$ph-logo.mp4"
  row "videos/$ph-logo.mp4" "the camera zooms in on a $ph" watermark
  move "$f" "$v/$ph-still.mp4" still
  row "videos/$ph-still.mp4" "a $ph runs quickly to the left" static
  flaw "$v/$ph-pan.mp4" "$v/$ph-blur.mp4" "gblur=sigma=$((H / 90))"
  row "videos/$ph-blur.mp4" "the camera pans right across a $ph" low_quality
  flaw "$v/$ph-pan.mp4" "$v/$ph-noise.mp4" "noise=alls=20:allf=t" "-crf 32"
  row "videos/$ph-noise.mp4" "the camera pans right across a $ph" low_quality
  flaw "$v/$ph-pan.mp4" "$v/$ph-flicker.mp4" "eq=eval=frame:brightness='0.12*(2*mod(n\,2)-1)'"
  row "videos/$ph-flicker.mp4" "the camera pans right across a $ph" flicker
  move "$g" "$TMP/other.mp4" pan
  ffmpeg -nostdin -loglevel error -y -i "$v/$ph-pan.mp4" -i "$TMP/other.mp4" -filter_complex \
    "[0]trim=end_frame=$((N / 2)),setpts=PTS-STARTPTS,setsar=1[a];[1]trim=start_frame=$((N / 2)),setpts=PTS-STARTPTS,setsar=1[b];[a][b]concat=n=2:v=1" \
    $X264 "$v/$ph-cut.mp4"
  row "videos/$ph-cut.mp4" "the camera pans right across a $ph" shot_cut
  move "$f" "$v/$ph-whip.mp4" whip
  row "videos/$ph-whip.mp4" "the camera swings quickly to the right over a $ph"
  # A 1 fps source (a slide-show-like timelapse) resampled to the usual rate by repeating frames.
  ffmpeg -nostdin -loglevel error -y -i "$v/$ph-zoom.mp4" -vf "fps=1.2,fps=$FPS" $X264 "$v/$ph-1fps.mp4"
  row "videos/$ph-1fps.mp4" "the camera zooms in on a $ph"
  # A phone clip: pixels stored portrait, a display matrix that turns them back to landscape.
  ffmpeg -nostdin -loglevel error -y -i "$v/$ph-pan.mp4" -vf "transpose=clock" $X264 "$TMP/portrait.mp4"
  ffmpeg -nostdin -loglevel error -y -i "$TMP/portrait.mp4" -c copy -metadata:s:v:0 rotate=90 "$v/$ph-rotated.mp4"
  row "videos/$ph-rotated.mp4" "the camera pans right across a $ph"
  # The dark static photograph: a still shot that must not read as a watermark.
  cam=$(ls "$IMG/camera".* | head -1)
  move "$cam" "$v/$ph-dark-still.mp4" still
  row "videos/$ph-dark-still.mp4" "a photographer stands still on a meadow"
done

# The same clip re-encoded at 360/540/720/1080 px from a 1080p master (resolution agreement):
# 8 fps and a higher CRF keep the four files small.
ph=coffee
f=$(ls "$IMG/$ph".* | head -1)
FPS=8; N=18
move "$f" "$TMP/master.mp4" pan 1920 1080
flaw "$TMP/master.mp4" "$TMP/master-wm.mp4" "$(wm_text white@0.45 br)"
for h in 360 540 720 1080; do
  w=$((h * 16 / 9))
  ffmpeg -nostdin -loglevel error -y -i "$TMP/master-wm.mp4" -vf "scale=$w:$h:flags=area" $X264 -crf 30 "$DIR/videos/res-wm-$h.mp4"
  row "videos/res-wm-$h.mp4" "the camera pans right across a coffee cup" watermark
done
echo "wrote $(($(wc -l <"$MAN") - 1)) clips to $DIR"
du -sh "$DIR"
