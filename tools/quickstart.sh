#!/usr/bin/env bash
# tools/quickstart.sh - the README's first command: install the packages gimp-sd needs,
# build it, and make a first picture.  With a real model installed (see README "Models") it
# uses that; otherwise it says so and uses the tiny test model that ships with the tests
# (its pictures are abstract smudges: it proves the engine runs, nothing more).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
make -j"$(nproc)"

models_dir="${GIMP2_DIRECTORY:-$HOME/.config/GIMP/2.10}/sd-models"
model=""
for d in $(echo "${SD_MODEL_PATH:-}" | tr ':' ' ') "$models_dir"; do
    [ -d "$d" ] || continue
    model=$(find "$d" -maxdepth 1 -name '*.safetensors' ! -iname '*taesd*' | sort | head -n 1)
    [ -n "$model" ] && break
done
if [ -n "$model" ]; then
    echo "quickstart: generating with $model"
    args=(-m "$model" --steps 20)
else
    echo "quickstart: no Stable Diffusion model found in \$SD_MODEL_PATH or $models_dir;"
    echo "quickstart: using the small TEST model (tests/data/tiny-sd15): the picture will be"
    echo "quickstart: abstract. See README 'Models' for real weights."
    args=(-m tests/data/tiny-sd15/model-f16.safetensors --steps 8 --resolution 256)
fi
build/sd txt2img "${args[@]}" -p "a lighthouse on a rocky coast at sunset" \
    -n "blurry, low quality" --seed 42 -W 512 -H 384 -o quickstart.png
echo "quickstart: wrote $(pwd)/quickstart.png"
