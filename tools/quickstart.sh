#!/usr/bin/env bash
# tools/quickstart.sh - the README's first command: install the packages gimp-sd needs,
# build it, install the plug-in into your GIMP (~/.config/GIMP/2.10, or $GIMP2_DIRECTORY) and
# make a first picture through GIMP itself (gimp-console + Script-Fu, File > Create's
# txt2img procedure) into ./quickstart.png.  With a real model in your models folder (see
# README "Models") it uses that; otherwise it says so and uses the tiny test model that
# ships with the tests, whose pictures are abstract: it proves the installation works.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
tools/install-deps.sh
make -j"$(nproc)"

profile="${GIMP2_DIRECTORY:-${XDG_CONFIG_HOME:-$HOME/.config}/GIMP/2.10}"
case "$profile" in /*) ;; *) profile="$HOME/$profile" ;; esac
if [ ! -d "$profile" ]; then
    # let GIMP create its profile first: its user installation only runs on a missing folder
    timeout 300 gimp-console-2.10 -i -d -f -b '(gimp-quit 0)' >/dev/null 2>&1 || true
fi
make install

model=""
for d in "$profile/sd-models" $(echo "${SD_MODEL_PATH:-}" | tr ':' ' '); do
    [ -d "$d" ] || continue
    model=$(find "$d" -maxdepth 1 -name '*.safetensors' ! -iname '*taesd*' | sort | head -n 1)
    [ -n "$model" ] && break
done
if [ -n "$model" ]; then
    echo "quickstart: generating with $model (this takes a while on a CPU)"
    steps=20 res=0
else
    model="$top/tests/data/tiny-sd15/model-f16.safetensors"
    echo "quickstart: no Stable Diffusion model in $profile/sd-models or \$SD_MODEL_PATH;"
    echo "quickstart: using the small TEST model $model:"
    echo "quickstart: the picture will be abstract. See README 'Models' for real weights."
    steps=8 res=256
fi
out="$top/quickstart.png"
rm -f "$out"
# plug-in-sd-txt2img-new-image: prompt negative model seed steps cfg sampler karras spacing
# clip-skip prediction resolution width height -> (image layer seed)
timeout 1800 gimp-console-2.10 -i --stack-trace-mode=never -b "
  (let* ((r (plug-in-sd-txt2img-new-image RUN-NONINTERACTIVE
              \"a lighthouse on a rocky coast at sunset\" \"blurry, low quality\" \"$model\"
              42 $steps -1 -1 0 -1 0 0 $res 512 384))
         (img (car r)) (flat (car (gimp-image-flatten img))))
    (gimp-file-save RUN-NONINTERACTIVE img flat \"$out\" \"$out\")
    (gimp-message (string-append \"quickstart: seed \" (number->string (caddr r)))))" \
    -b '(gimp-quit 0)' 2>&1 | grep -E 'quickstart|rror' || true
[ -s "$out" ] || { echo "quickstart: GIMP did not produce $out (see the messages above)"; exit 1; }
echo "quickstart: wrote $out; in GIMP: Filters > Generative > Stable Diffusion"
