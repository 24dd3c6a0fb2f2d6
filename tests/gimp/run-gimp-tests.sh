#!/usr/bin/env bash
# tests/gimp/run-gimp-tests.sh BUILD_DIR - the GIMP integration tests of the gimp-sd plug-in:
# real gimp-console 2.10 in batch mode running the Script-Fu tests of sd-tests.scm on real
# images with the tiny golden models, in an isolated profile under BUILD_DIR/gimp-tests.
#
# gimp-console always exits 0, so this script decides: every test must print its
# "SD-TEST-PASS <name>" marker, and the tests that write PNG files are then checked with
# ImageMagick (pixels outside the selection unchanged in the composite, inside changed; equal
# seeds give equal layers).  Prints one line per test and closes with
# "gimp: N passed, N failed"; exits non-zero when a test failed.
#
# Sessions (one gimp-console each): A with the resident process (most tests), B with
# SD_RESIDENT=0 and no models (in-process fallback, "no model found"), C with a short idle
# timeout (model release, stopping the resident), D with processes killed during calls
# (bad-input.sh), then the README's batch example (tools/examples/sd-batch.scm) run as
# the README says; then GIMP's GUI under Xvfb for the undo, dialog and progress-bar Cancel
# tests (gui-tests.sh; skipped without Xvfb and xdotool).  The work folder
# BUILD_DIR/gimp-tests (logs, images, screenshots/ of the dialogs) stays until the next run.
set -u
build=${1:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$build"
build=$(cd "$build" && pwd)
work=$build/gimp-tests
tests_dir=$root/tests/gimp

rm -rf "$work"
mkdir -p "$work/home" "$work/in" "$work/out" "$work/models" "$work/empty"

# ---- isolation: nothing may touch the real profile or caches --------------------------------
export HOME=$work/home
export XDG_CONFIG_HOME=$HOME/.config XDG_CACHE_HOME=$HOME/.cache XDG_DATA_HOME=$HOME/.local/share
export GIMP2_DIRECTORY=$work/profile            # absolute, as GIMP requires
unset DISPLAY WAYLAND_DISPLAY SD_MODEL_PATH SD_RESIDENT SD_RESIDENT_IDLE SD_MEMORY_LIMIT_MB
export ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}  # GLib/GEGL keep caches
export SD_THREADS=${SD_THREADS:-2}
export SD_MEMORY_LIMIT_MB=1000                  # the tiny models need far less; err-too-large more

passed=0 failed=0
ok() { echo "ok    gimp $1"; passed=$((passed + 1)); }
bad() { echo "FAIL  gimp $1: $2"; failed=$((failed + 1)); }
finish() {
    echo "gimp: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

gimp_console() {
    timeout --kill-after=10 "${GIMP_TIMEOUT:-600}" gimp-console-2.10 --no-interface --no-data \
        --no-fonts --stack-trace-mode=never --console-messages "$@"
}

for tool in gimp-console-2.10 convert timeout; do
    command -v "$tool" >/dev/null ||
        { bad setup "$tool not found (tools/install-deps.sh)"; finish; }
done

# ---- 1. profile first (GIMP's user install runs only when the folder is missing), then the
#         plug-in ------------------------------------------------------------------------------
if ! gimp_console -b '(gimp-quit 0)' >"$work/init.log" 2>&1 || [ ! -d "$GIMP2_DIRECTORY" ]; then
    bad setup "gimp-console could not create the profile (see $work/init.log)"; finish
fi
if ! make -s -C "$root" install B="$build" GIMP2_DIRECTORY="$GIMP2_DIRECTORY" \
        >"$work/install.log" 2>&1; then
    bad setup "make install failed (see $work/install.log)"; finish
fi

# ---- 2. models: one in the profile, others on $SD_MODEL_PATH ----------------------------------
data=$root/tests/data
mkdir -p "$GIMP2_DIRECTORY/sd-models"
ln -s "$data/tiny-sd15/model-f16.safetensors" "$GIMP2_DIRECTORY/sd-models/tiny-sd15.safetensors"
ln -s "$data/tiny-sd15/model-f16.json" "$GIMP2_DIRECTORY/sd-models/tiny-sd15.json"
# a preview decoder next to the models (never "the first model"; the dialogs' live previews)
ln -s "$data/taesd/taesd_decoder.safetensors" "$GIMP2_DIRECTORY/sd-models/taesd_decoder.safetensors"
ln -s "$data/tiny-sd15-inpaint/model-f16.safetensors" "$work/models/tiny-sd15-inpaint.safetensors"
ln -s "$data/tiny-sd15-inpaint/model-f16.json" "$work/models/tiny-sd15-inpaint.json"
ln -s "$data/tiny-sd15/diffusers" "$work/models/tiny-sd15-diffusers"
# "turbo" in the name makes the engine treat it as SD-Turbo (the dialogs' presets)
ln -s "$data/tiny-sd15/model-f16.safetensors" "$work/models/tiny-turbo.safetensors"
ln -s "$data/tiny-sd15/model-f16.json" "$work/models/tiny-turbo.json"
printf 'this is not a safetensors file\n' >"$work/models/broken.safetensors"
. "$tests_dir/bad-input.sh"
bad_input_models "$work/models"

# ---- 3. test images (deterministic) -----------------------------------------------------------
in=$work/in
convert -size 96x80 xc: \
    -sparse-color Bilinear '0,0 #c03020 95,0 #e0c040 0,79 #2040a0 95,79 #30a050' \
    -fill '#f0f0f0' -draw 'circle 48,40 48,22' -fill '#202020' -draw 'rectangle 8,60 30,72' \
    PNG24:"$in/rgb.png"
convert "$in/rgb.png" -colorspace Gray PNG8:"$in/gray-tmp.png"
convert "$in/gray-tmp.png" -define png:color-type=0 -depth 8 "$in/gray.png"
convert "$in/rgb.png" -depth 16 PNG48:"$in/rgb16.png"
convert "$in/rgb.png" -colors 16 PNG8:"$in/indexed.png"
convert -size 56x48 xc: -sparse-color Bilinear '0,0 #4080f0 55,47 #f0f080' \
    -fill '#803060' -draw 'circle 28,24 28,10' PNG32:"$in/patch.png"
convert "$in/rgb.png" -seed 7 -attenuate 0.6 +noise Gaussian PNG24:"$in/noisy.png"

cat >"$work/config.scm" <<EOF
(define sd-in "$in")
(define sd-out "$work/out")
(define sd-work "$work")
(define sd-data "$data")
(define sd-model-abs "$data/tiny-sd15/model-f16.safetensors")
EOF

# ---- 4. the sessions ----------------------------------------------------------------------------
# run_session LOG TEST...: one gimp-console, one -b per test, then check the markers.
run_session() {
    local log=$1
    shift
    local args=() t
    for t in "$@"; do
        args+=(-b "(begin (load \"$work/config.scm\") (load \"$tests_dir/sd-lib.scm\") \
(load \"$tests_dir/sd-tests.scm\") (sd-run \"$t\" test-$t))")
    done
    args+=(-b '(gimp-quit 0)')
    local t0=$SECONDS
    gimp_console "${args[@]}" >"$log" 2>&1
    local rc=$?
    echo "      $(basename "$log" .log): $# tests, $((SECONDS - t0)) s"
    [ $rc -eq 0 ] || echo "      (gimp-console exit $rc in $(basename "$log"): 124/137 = timeout)"
    for t in "$@"; do
        if grep -q "SD-TEST-PASS $t\$" "$log"; then
            PASSED_MARKERS+=("$t")
        else
            local why
            why=$(grep -m1 "SD-TEST-FAIL $t: " "$log" | sed "s/.*SD-TEST-FAIL $t: //")
            bad "$t" "${why:-no result marker (crash or timeout; see $log)}"
        fi
    done
}

# batch_example: the README's Script-Fu folder batch (tools/examples/sd-batch.scm), run as the
# README says (from the source folder, gimp-console -i, model "" = the first model of the
# profile's sd-models) on a folder of two PNGs and a JPEG: every picture gets its result of
# the same size in the output folder, clearly changed (more than a quarter of the pixels by
# over 10 %, which JPEG re-encoding alone does not do), and the inputs stay as they were.
batch_example() {
    local t=batch-example b=$work/batch f sums
    mkdir -p "$b/in" "$b/out"
    cp "$in/rgb.png" "$b/in/gradient.png"
    convert "$in/noisy.png" -resize 64x48! PNG24:"$b/in/noisy.png"
    convert "$in/rgb.png" -quality 90 "$b/in/photo.jpg"
    sums=$(cd "$b/in" && md5sum ./*)
    local t0=$SECONDS
    (cd "$root" && timeout --kill-after=10 "${GIMP_TIMEOUT:-600}" gimp-console-2.10 -i \
        -b "(begin (load \"tools/examples/sd-batch.scm\")
                   (sd-batch-denoise \"$b/in\" \"$b/out\" \"\"))" \
        -b '(gimp-quit 0)') >"$work/session-batch.log" 2>&1
    echo "      session-batch: 3 pictures, $((SECONDS - t0)) s"
    grep -q 'batch command executed successfully' "$work/session-batch.log" ||
        { bad "$t" "the batch command failed (see $work/session-batch.log)"; return; }
    [ "$(cd "$b/in" && md5sum ./*)" = "$sums" ] || { bad "$t" "an input file changed"; return; }
    [ "$(ls "$b/in" | wc -l)" = 3 ] || { bad "$t" "files appeared in the input folder"; return; }
    local size n changed
    for f in gradient.png noisy.png photo.jpg; do
        [ -f "$b/out/$f" ] || { bad "$t" "no output $f"; return; }
        size=$(identify -format '%wx%h' "$b/in/$f" 2>/dev/null)
        [ "$(identify -format '%wx%h' "$b/out/$f" 2>/dev/null)" = "$size" ] ||
            { bad "$t" "$f: the output is not $size"; return; }
        n=$(identify -format '%[fx:w*h]' "$b/in/$f" 2>/dev/null)
        changed=$(compare -metric AE -fuzz 10% "$b/in/$f" "$b/out/$f" null: 2>&1)
        [ "${changed%%.*}" -gt $((n / 4)) ] 2>/dev/null ||
            { bad "$t" "$f: only $changed of $n pixels changed"; return; }
    done
    ok "$t"
}

PASSED_MARKERS=()
export SD_MODEL_PATH=$work/models
# SD_GIMP_TESTS=gui runs only the GUI tests (4b), for work on the dialogs
if [ "${SD_GIMP_TESTS:-all}" != gui ]; then
run_session "$work/session-a.log" \
    resident-fresh pdb-doc err-args err-interactive err-no-model err-broken-model err-taesd \
    err-indexed err-no-selection err-selection-elsewhere err-outpaint-nothing err-group \
    err-inpaint-model err-too-large model-folder \
    txt2img-rgb-rect txt2img-gray-size txt2img-rgb16-ellipse txt2img-new-image \
    img2img-rgba-ellipse img2img-gray-rect img2img-big-layer \
    inpaint-gray-ellipse inpaint-rgb16-rect inpaint-rgba-ellipse \
    denoise-rgb-ellipse denoise-rgb16-rect \
    outpaint-rgb16-grow outpaint-gray-right outpaint-uncovered \
    seeds last-vals resident-reuse \
    err-truncated-model err-wrong-family err-denoise-1x1 err-huge-layer txt2img-1x1 img2img-1x1 \
    img2img-sel-1px inpaint-sel-1px img2img-sel-all inpaint-sel-all img2img-float-ellipse

mv "$GIMP2_DIRECTORY/sd-models" "$work/sd-models.away"
SD_RESIDENT=0 SD_MODEL_PATH=$work/empty run_session "$work/session-b.log" \
    inprocess err-no-models-at-all
mv "$work/sd-models.away" "$GIMP2_DIRECTORY/sd-models"

SD_RESIDENT_IDLE=3 run_session "$work/session-c.log" idle-release stop-fallback

# D: crashes during a call (crash_watch in bad-input.sh kills the processes)
crash_watch "$work/session-d.log" &
watch_pid=$!
run_session "$work/session-d.log" \
    err-crash-caller err-crash-caller-kill img2img-crash-resident err-crash-inprocess
kill "$watch_pid"

batch_example
fi

# ---- 4b. the GUI: undo, the dialogs, Cancel on the progress (tests/gimp/gui-tests.sh) ---------
same() { [ "$(compare -metric AE "$1" "$2" null: 2>&1)" = 0 ]; }
. "$tests_dir/gui-tests.sh"
gui_tests

# ---- 5. pixel checks (ImageMagick) --------------------------------------------------------------
out=$work/out

# mask W H X Y MW MH -> a new PNG path: white inside the rectangle, black elsewhere
mask() {
    local f=$work/mask-$RANDOM$RANDOM.png
    convert -size "$1x$2" xc:black -fill white \
        -draw "rectangle $3,$4 $(($3 + $5 - 1)),$(($4 + $6 - 1))" "$f"
    echo "$f"
}

# largest channel difference of two images under a mask (0 = identical there)
maxdiff() {
    convert "$1" "$2" -alpha off -compose difference -composite -separate \
        -evaluate-sequence max "$3" -compose multiply -composite -format '%[max]' info: 2>&1
}

# check_sel NAME: where the test's change mask (NAME-mask.png: the selection within the layer
# rectangle, as GIMP renders it) is 0 the composite is unchanged; where it is full something
# changed.
check_sel() {
    local t=$1
    local before=$out/$t-before.png after=$out/$t-after.png m=$out/$t-mask.png
    [ -f "$before" ] && [ -f "$after" ] && [ -f "$m" ] ||
        { bad "$t" "result images missing"; return; }
    local keep=$work/$t-keep.png core=$work/$t-core.png d
    convert "$m" -strip -channel R -separate +channel -threshold 0 -negate "$keep"
    convert "$m" -strip -channel R -separate +channel -threshold 99.99% "$core"
    d=$(maxdiff "$before" "$after" "$keep")
    [ "$d" = 0 ] || { bad "$t" "pixels outside the selection changed (max diff $d)"; return; }
    d=$(maxdiff "$before" "$after" "$core")
    [ "$d" != 0 ] || { bad "$t" "nothing changed inside the selection"; return; }
    check_alpha "$t" && ok "$t"
}

# check_alpha NAME: the soft selection is the new layer's alpha (the sources are opaque): the
# layer's alpha equals the mask (rendered in sRGB, so linearised) within 2 %, which catches a
# selection that lost its feathering.  Only for layers inside the canvas.
check_alpha() {
    local t=$1 rect x y w h W H m
    m=$out/$t-mask.png
    rect=$(grep -h "SD-RECT $t: " "$work"/session-*.log | head -n 1 |
           sed -E 's/.*: (-?[0-9]+ -?[0-9]+ [0-9]+ [0-9]+) .*/\1/')
    read -r x y w h <<<"$rect"
    W=$(identify -format '%w' "$m") H=$(identify -format '%h' "$m")
    if [ -z "$h" ] || [ "$x" -lt 0 ] || [ "$y" -lt 0 ] ||
       [ $((x + w)) -gt "$W" ] || [ $((y + h)) -gt "$H" ]; then
        return 0
    fi
    convert "$m" -strip -channel R -separate +channel -crop "${w}x$h+$x+$y" +repage \
        -fx 'u <= 0.04045 ? u / 12.92 : pow((u + 0.055) / 1.055, 2.4)' "$work/$t-sel.png"
    convert "$out/$t-layer.png" -strip -alpha extract "$work/$t-alpha.png"
    d=$(convert "$work/$t-sel.png" "$work/$t-alpha.png" -compose difference -composite \
          -format '%[fx:maxima > 0.02 ? maxima : 0]' info: 2>&1)
    [ "$d" = 0 ] || { bad "$t" "layer alpha differs from the selection by up to $d"; return 1; }
}

for t in "${PASSED_MARKERS[@]}"; do
    case $t in
    txt2img-new-image)
        if [ "$(identify -format '%wx%h' "$out/new-image.png")" = 64x48 ] &&
           [ "$(convert "$out/new-image.png" -format '%[fx:standard_deviation > 0]' info:)" = 1 ]
        then ok "$t"; else bad "$t" "new image is not a 64x48 picture"; fi ;;
    *crash*) check_crash "$t" ;;
    err-*) check_failed "$t" ;;
    txt2img-* | img2img-* | inpaint-* | denoise-* | model-folder | inprocess | stop-fallback)
        check_sel "$t" ;;
    outpaint-gray-right)
        # grown by 40 px on the right: the old picture keeps its pixels left of the 32 px band
        convert "$out/$t-after.png" -crop 96x80+0+0 +repage "$work/$t-old.png"
        d=$(maxdiff "$out/$t-before.png" "$work/$t-old.png" "$(mask 96 80 0 0 64 80)")
        if [ "$(identify -format '%wx%h' "$out/$t-after.png")" != 136x80 ]; then
            bad "$t" "composite is not 136x80"
        elif [ "$d" != 0 ]; then bad "$t" "the old picture changed beyond the overlap band"
        else ok "$t"; fi ;;
    outpaint-uncovered)
        # the layer fills the canvas around the 56x48 patch at (30, 20): that part changed
        outside=$work/$t-outside.png
        convert "$(mask 96 80 30 20 56 48)" -negate "$outside"
        d=$(maxdiff "$out/$t-before.png" "$out/$t-after.png" "$outside")
        if [ "$d" != 0 ]; then ok "$t"; else bad "$t" "the uncovered canvas did not change"; fi ;;
    outpaint-rgb16-grow)
        # grown by 16/8/24/0 px: the old picture sits at (16, 8); the engine regenerates a
        # 32 px band inside each extended side (left, top, right) and keeps the rest exactly
        if [ "$(identify -format '%wx%h' "$out/$t-after.png")" != 136x88 ]; then
            bad "$t" "composite is not 136x88"
        else
            convert "$out/$t-after.png" -crop 96x80+16+8 +repage "$work/$t-old.png"
            d=$(maxdiff "$out/$t-before.png" "$work/$t-old.png" "$(mask 96 80 32 32 32 48)")
            if [ "$d" = 0 ]; then ok "$t"
            else bad "$t" "the old picture changed beyond the overlap band (max diff $d)"; fi
        fi ;;
    seeds)
        if ! same "$out/seed-a.png" "$out/seed-b.png"; then bad "$t" "same seed, different layers"
        elif same "$out/seed-a.png" "$out/seed-c.png"; then bad "$t" "different seeds, same layer"
        else ok "$t"; fi ;;
    last-vals)
        if same "$out/lastvals-a.png" "$out/lastvals-b.png"; then ok "$t"
        else bad "$t" "RUN-WITH-LAST-VALS gave another layer"; fi ;;
    *) ok "$t" ;;
    esac
done

# ---- 6. isolation -------------------------------------------------------------------------------
[ ! -e "$HOME/.config/GIMP" ] || bad isolation "GIMP wrote a profile outside GIMP2_DIRECTORY"
finish
