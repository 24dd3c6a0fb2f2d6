# tests/gimp/gui-tests.sh - the GIMP GUI tests of gimp-sd, sourced by run-gimp-tests.sh (they
# use its variables work, build, in, tests_dir and its functions ok, bad, same).
#
# GIMP runs with its user interface under Xvfb, with the Script-Fu server, in the isolated
# profile; xdotool types into its windows.  Skipped (not passed) without Xvfb/xdotool.
#
#   undo-*    the PDB has no undo procedure: the filters are called through the Script-Fu
#             server and Ctrl+Z is pressed in the image window.  One Ctrl+Z must restore
#             layers, canvas, offsets, selection and pixels.
#   dialog-*  each filter's dialog as a user meets it: opened with a keyboard shortcut in the
#             image window (assigned in the profile's menurc), fields set through their
#             mnemonics, Generate -> a new layer whose parameters are what was typed; then a
#             long generation, a screenshot of the dialog while it runs
#             (screenshots/<filter>.png), Cancel -> the generation stops within 3 s and the
#             image is unchanged; Help -> the filter's page of the installed help (a stand-in
#             browser records the address GIMP's help system opens); Close.  The Script-Fu
#             server stays free while a dialog is open, so the image is checked through it.
#             dialog-last-values: the txt2img dialog opened again and Generate pressed at once
#             gives a layer made with what was typed the first time, and with the values of
#             the last committed generation, not those of the cancelled one.
#             Last, a dialog with no model anywhere (screenshots/no-models.png).
#   progress-cancel  Filters > Repeat (a non-interactive call, forwarded to the resident, whose
#             progress GIMP shows in the image window's status bar), its Cancel button clicked
#             during the generation (screenshots/progress-cancel.png): the call ends cancelled,
#             nothing generates again, the image is unchanged.  Last: GIMP ends the resident.

gui_pid="" xvfb_pid="" gui_display="" sf_port="" ui_dlg=""

gui_cleanup() {
    [ -n "$gui_pid" ] && kill "$gui_pid" 2>/dev/null
    [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null
    gui_pid="" xvfb_pid=""
}
trap gui_cleanup EXIT

# sf COMMAND: send one command to the Script-Fu server on $sf_port, print its reply
sf() {
    local n=${#1} hdr
    exec 4<>"/dev/tcp/127.0.0.1/$sf_port" || return 1
    printf "G\\x$(printf %02x $((n >> 8)))\\x$(printf %02x $((n & 255)))" >&4
    printf '%s' "$1" >&4
    hdr=$(head -c 4 <&4 | od -An -tu1)
    set -- $hdr
    [ $# -eq 4 ] && head -c $(($3 * 256 + $4)) <&4
    exec 4>&-
    [ $# -eq 4 ] && [ "$2" = 0 ]
}

xdo() { DISPLAY=$gui_display xdotool "$@"; }
shot() { DISPLAY=$gui_display import -window "$1" "$work/screenshots/$2.png"; }

# wait_window REGEX SECONDS: print the id of the first visible window whose name matches
wait_window() {
    local i w
    for i in $(seq $(($2 * 5))); do
        w=$(xdo search --onlyvisible --name "$1" 2>/dev/null | head -n 1)
        [ -n "$w" ] && { echo "$w"; return 0; }
        sleep 0.2
    done
    return 1
}

# wait_title WIN REGEX SECONDS [not]: until the window's name matches REGEX (or, with "not",
# no longer does)
wait_title() {
    local i name
    for i in $(seq $(($3 * 20))); do
        name=$(xdo getwindowname "$1" 2>/dev/null) || return 1
        if [ "${4:-}" = not ]; then
            [[ $name =~ $2 ]] || return 0
        else
            [[ $name =~ $2 ]] && return 0
        fi
        sleep 0.05
    done
    return 1
}

# height WIN: the window's height in px
height() { xdo getwindowgeometry "$1" | sed -n 's/.*Geometry: [0-9]*x\([0-9]*\).*/\1/p'; }

# wait_stable WIN: until the window's height has not changed for 0.4 s (its layout settled)
wait_stable() {
    local i h last=""
    for i in $(seq 50); do
        h=$(height "$1")
        [ -n "$h" ] && [ "$h" = "$last" ] && return 0
        last=$h
        sleep 0.4
    done
}

# gui_start: Xvfb, GIMP with the Script-Fu server, shortcuts for the five dialogs, a stand-in
# web browser for the help pages
gui_start() {
    local tool i
    for tool in Xvfb xdotool gimp-2.10 import; do
        if ! command -v "$tool" >/dev/null; then
            echo "skip  gimp undo-*, dialog-*, progress-cancel: $tool not installed" \
                 "(SD_DEPS_EXTRA=dev tools/install-deps.sh)"
            return 1
        fi
    done
    local k=1 f
    for f in txt2img img2img inpaint outpaint denoise; do
        echo "(gtk_accel_path \"<Actions>/plug-in/plug-in-sd-$f\" \"<Primary><Alt>$k\")"
        k=$((k + 1))
    done >>"$GIMP2_DIRECTORY/menurc"
    mkdir -p "$XDG_DATA_HOME/applications" "$XDG_CONFIG_HOME"
    printf '#!/bin/sh\necho "$1" >>"%s"\n' "$work/help-uri.log" >"$work/browser.sh"
    chmod +x "$work/browser.sh"
    printf '[Desktop Entry]\nType=Application\nName=gimp-sd test browser\nExec=%s %%u\n%s\n' \
        "$work/browser.sh" 'MimeType=text/html;' \
        >"$XDG_DATA_HOME/applications/sd-test-browser.desktop"
    printf '[Default Applications]\ntext/html=sd-test-browser.desktop\n' \
        >"$XDG_CONFIG_HOME/mimeapps.list"

    local dfile=$work/xvfb.display
    Xvfb -displayfd 3 -screen 0 1280x900x24 -nolisten tcp 3>"$dfile" >"$work/xvfb.log" 2>&1 &
    xvfb_pid=$!
    for i in $(seq 100); do [ -s "$dfile" ] && break; sleep 0.1; done
    [ -s "$dfile" ] || { bad gui "Xvfb did not start (see $work/xvfb.log)"; return 1; }
    gui_display=:$(cat "$dfile")
    sf_port=$((20000 + RANDOM % 20000))
    DISPLAY=$gui_display timeout --kill-after=10 "${GIMP_TIMEOUT:-600}" gimp-2.10 \
        --new-instance --no-splash --no-data --no-fonts --stack-trace-mode=never \
        --console-messages -b "(plug-in-script-fu-server RUN-NONINTERACTIVE \"127.0.0.1\" \
$sf_port \"$work/sf-server.log\")" >"$work/session-gui.log" 2>&1 &
    gui_pid=$!
    for i in $(seq 300); do sf '(+ 1 2)' >/dev/null 2>&1 && break; sleep 0.2; done
    sf '(+ 1 2)' >/dev/null 2>&1 || { bad gui "GIMP's Script-Fu server did not answer"; return 1; }
    sf "(begin (load \"$work/config.scm\") (load \"$tests_dir/sd-lib.scm\") \
(load \"$tests_dir/sd-tests.scm\"))" >/dev/null
}

gui_stop() {
    local i
    sf '(gimp-quit 1)' >/dev/null 2>&1
    for i in $(seq 50); do kill -0 "$gui_pid" 2>/dev/null || break; sleep 0.2; done
    gui_cleanup
    rm -rf "$GIMP2_DIRECTORY/backups"
}

# ---- undo ----------------------------------------------------------------------------------------

gui_undo() {
    local t0=$SECONDS
    sf "(sd-undo-prepare)" >/dev/null
    local win
    win=$(wait_window 'rgb\.png' 10) || { bad undo "no image window"; return; }
    local name args reply i
    for name in img2img outpaint; do
        case $name in
        img2img) args="\"plug-in-sd-img2img\" '((\"strength\" . 0.8))" ;;
        outpaint)
            args="\"plug-in-sd-outpaint\" '((\"extend-left\" . 16) (\"extend-bottom\" . 8))" ;;
        esac
        reply=$(sf "(sd-undo-run \"undo-$name\" $args)")
        case $reply in *SD-UNDO-OK*) ;; *) bad "undo-$name" "${reply:-no reply}"; continue ;; esac
        xdo windowfocus --sync "$win" key --clearmodifiers ctrl+z
        for i in $(seq 40); do
            reply=$(sf "(sd-undo-check \"undo-$name\")")
            case $reply in *SD-UNDO-OK*) break ;; esac
            sleep 0.25
        done
        case $reply in
        *SD-UNDO-OK*)
            if same "$work/out/undo-$name-before.png" "$work/out/undo-$name-undone.png"; then
                ok "undo-$name"
            else
                bad "undo-$name" "pixels differ after the undo"
            fi ;;
        *) bad "undo-$name" "${reply:-no reply}" ;;
        esac
    done
    echo "      gui undo: 2 tests, $((SECONDS - t0)) s"
}

# ---- dialogs -------------------------------------------------------------------------------------

# ui_key KEY...: keys for the dialog $ui_dlg, given the focus first (without a window manager
# nothing keeps it there: a GIMP window may take it)
ui_key() {
    xdo windowfocus --sync "$ui_dlg" key --clearmodifiers "$@"
}

# ui_set KEY TEXT: focus a field by its mnemonic (alt+KEY), replace its text, leave it (Tab
# commits a spin button's value)
ui_set() {
    ui_key "alt+$1" ctrl+a
    xdo type --delay 15 "$2"
    xdo key Tab
}

# ui_fail TEST MESSAGE: a failed dialog test, with a screenshot of the whole screen
ui_fail() {
    DISPLAY=$gui_display import -window root "$work/screenshots/failed-$1.png" 2>/dev/null
    bad "$1" "$2 (screen: $work/screenshots/failed-$1.png)"
}

# gui_dialog FILTER SHORTCUT TITLE GROW WANT... : the test of one filter's dialog (see the
# header); the filter's own fields are set by ui_fields_FILTER; WANT are key=value lines the new
# layer's parameters must hold.
gui_dialog() {
    local f=$1 key=$2 title=$3 grow=$4 t=dialog-$1
    shift 4
    local want="" w
    for w in "$@"; do want="$want \"$w\""; done
    local src=rgb.png
    [ "$f" = denoise ] && src=noisy.png
    cp "$in/$src" "$work/ui-$f.png"
    local reply img dlg i
    reply=$(sf "(sd-ui-prepare \"$f\")") || { bad "$t" "prepare: $reply"; return; }
    img=$(wait_window "ui-$f\\.png" 10) || { bad "$t" "no image window"; return; }
    xdo windowfocus --sync "$img" key --clearmodifiers "ctrl+alt+$key"
    dlg=$(wait_window "^Stable Diffusion: $title\$" 30) ||
        { ui_fail "$t" "the dialog did not open (see $work/session-gui.log)"; return; }
    ui_dlg=$dlg
    xdo windowfocus --sync "$dlg"
    wait_stable "$dlg"

    # the fields, then Generate: a new layer with what was typed.  txt2img first picks the
    # Turbo model (last in the list): its presets (1 step, no guidance) replace the sampling
    # fields and set the resolution back to native, so that comes before the rest.
    [ "$f" = txt2img ] && ui_key alt+m End
    ui_set p "a lighthouse at dusk"
    ui_set d 4242
    # open Advanced: its fields take mnemonics once the window has grown to show them
    local h0
    h0=$(height "$dlg")
    ui_key alt+a
    for i in $(seq 100); do [ "$(height "$dlg")" -gt "$h0" ] && break; sleep 0.1; done
    [ "$(height "$dlg")" -gt "$h0" ] || { ui_fail "$t" "Advanced did not open"; return; }
    wait_stable "$dlg"
    ui_set o 64
    "ui_fields_$f" "$dlg"
    ui_key alt+g
    if ! wait_title "$img" ', 2 layers\)' 60 || ! wait_title "$dlg" generating 10 not; then
        ui_fail "$t" "no new layer after Generate"
        ui_key alt+c
        return
    fi
    reply=$(sf "(sd-ui-check-run \"$f\" $grow (list \"prompt=a lighthouse at dusk\" \
\"seed=4242\" \"resolution=64\" $want))")
    case $reply in *SD-UI-OK*) ;; *) ui_fail "$t" "${reply:-no reply}"; ui_key alt+c; return ;; esac
    shot "$dlg" "$f-done"

    # a long generation, cancelled
    ui_set s 1000
    ui_key alt+g
    wait_title "$dlg" generating 5 || { ui_fail "$t" "the second generation did not start"; return; }
    sleep 1.5
    shot "$dlg" "$f"
    ui_key alt+n
    if ! wait_title "$dlg" generating 3 not; then
        ui_fail "$t" "Cancel did not stop the generation within 3 s"
        return
    fi
    reply=$(sf "(sd-ui-check-unchanged \"$f\" \"cancelled\")")
    case $reply in *SD-UI-OK*) ;; *) bad "$t" "after Cancel: ${reply:-no reply}"; return ;; esac
    same "$work/out/ui-$f-first.png" "$work/out/ui-$f-cancelled.png" ||
        { bad "$t" "the cancelled generation changed the pixels"; return; }

    # Help: GIMP's help system opens the filter's installed page
    : >"$work/help-uri.log"
    ui_key alt+h
    local page=$f
    for i in $(seq 50); do [ -s "$work/help-uri.log" ] && break; sleep 0.2; done
    local uri
    uri=$(head -n 1 "$work/help-uri.log")
    case $uri in
    */plug-ins/gimp-sd/help/en/$page.html) ;;
    *) bad "$t" "Help opened \"$uri\", not the installed $page.html"; return ;;
    esac
    [ -f "${uri#file://}" ] || { bad "$t" "the help page $uri does not exist"; return; }

    # Close: nothing more happens to the image
    ui_key alt+c
    for i in $(seq 50); do xdo getwindowname "$dlg" >/dev/null 2>&1 || break; sleep 0.2; done
    reply=$(sf "(sd-ui-check-unchanged \"$f\" \"closed\")")
    case $reply in *SD-UI-OK*) ;; *) bad "$t" "after Close: ${reply:-no reply}"; return ;; esac
    sf "(sd-ui-close)" >/dev/null
    ok "$t"
}

# The filters' own fields.
ui_fields_txt2img() {
    ui_set v "blurry, text"
    ui_set w 48
    ui_set e 40
}
ui_fields_img2img() {
    # first a request too large for SD_MEMORY_LIMIT_MB: the error is shown in the dialog and
    # nothing happens to the image (the layer count checked after the next run)
    ui_set o 4096
    ui_key alt+g
    sleep 1.5
    shot "$1" img2img-error
    ui_set o 64
    ui_set s 3
    ui_set r 0.5
}
ui_fields_inpaint() {
    ui_set s 3
    ui_set b 2
    ui_key alt+e Down                           # masked content: fill
}
ui_fields_outpaint() {
    ui_set s 3
    ui_set e 8
    ui_set r 16
}
ui_fields_denoise() {
    ui_set s 3
}

# What the txt2img dialog test chooses and types, and the Turbo model's presets (1 step,
# guidance off, Euler ancestral, trailing spacing): its layer's parameters must hold them.
txt2img_want=("model=tiny-turbo.safetensors" "prompt=a lighthouse at dusk"
    "negative-prompt=blurry, text" "seed=4242" "steps=1" "cfg-scale=0" "sampler=euler_a"
    "timestep-spacing=trailing" "width=48" "height=40" "resolution=64")

# The last values: the txt2img dialog of gui_dialog opened again on another image, Generate
# pressed without touching anything.  The layer's parameters must be txt2img_want again, so
# steps=1: the cancelled 1000-step generation and what the dialog showed when it was closed
# are not remembered (only a committed generation's values are).
gui_last_values() {
    local t=dialog-last-values reply img dlg want="" w
    for w in "${txt2img_want[@]}"; do want="$want \"$w\""; done
    cp "$in/rgb.png" "$work/ui-last-values.png"
    reply=$(sf "(sd-ui-prepare \"last-values\")") || { bad "$t" "prepare: $reply"; return; }
    img=$(wait_window 'ui-last-values\.png' 10) || { bad "$t" "no image window"; return; }
    xdo windowfocus --sync "$img" key --clearmodifiers ctrl+alt+1
    if ! dlg=$(wait_window '^Stable Diffusion: Text to Image$' 30); then
        ui_fail "$t" "the dialog did not open"
        sf "(sd-ui-close)" >/dev/null
        return
    fi
    ui_dlg=$dlg
    xdo windowfocus --sync "$dlg"
    wait_stable "$dlg"
    ui_key alt+g
    if ! wait_title "$img" ', 2 layers\)' 60 || ! wait_title "$dlg" generating 10 not; then
        ui_fail "$t" "no new layer after Generate"
    else
        reply=$(sf "(sd-ui-check-run \"last-values\" 0 (list $want))")
        case $reply in *SD-UI-OK*) ok "$t" ;; *) ui_fail "$t" "${reply:-no reply}" ;; esac
    fi
    ui_key alt+c
    wait_title "$dlg" . 10 not
    sf "(sd-ui-close)" >/dev/null
}

# With no model anywhere the dialog opens and says so (screenshot no-models.png); Generate
# repeats the message and changes nothing.
gui_no_models() {
    local t=dialog-no-models reply img dlg
    mv "$GIMP2_DIRECTORY/sd-models" "$work/sd-models.away"
    mv "$work/models" "$work/models.away"
    cp "$in/rgb.png" "$work/ui-no-models.png"
    reply=$(sf "(sd-ui-prepare \"no-models\")")
    if img=$(wait_window 'ui-no-models\.png' 10); then
        xdo windowfocus --sync "$img" key --clearmodifiers ctrl+alt+2
        if dlg=$(wait_window '^Stable Diffusion: Image to Image$' 30); then
            ui_dlg=$dlg
            xdo windowfocus --sync "$dlg"
            wait_stable "$dlg"
            ui_key alt+g
            sleep 1
            shot "$dlg" no-models
            ui_key alt+c
            wait_title "$dlg" . 10 not
            reply=$(sf "(sd-ui-reply (lambda () (sd-assert (= (sd-n-layers sd-ui-img) 1) \
\"layers: \" (sd-n-layers sd-ui-img))))")
            case $reply in *SD-UI-OK*) ok "$t" ;; *) bad "$t" "${reply:-no reply}" ;; esac
        else
            bad "$t" "the dialog did not open"
        fi
        sf "(sd-ui-close)" >/dev/null
    else
        bad "$t" "no image window"
    fi
    mv "$work/sd-models.away" "$GIMP2_DIRECTORY/sd-models"
    mv "$work/models.away" "$work/models"
}

# ---- Cancel on the status bar's progress ---------------------------------------------------------

# sd_busy: the gimp-sd processes of the profile that used CPU (more than 0.1 s) within 1 s
sd_busy() {
    local p hz t0=() pids
    hz=$(getconf CLK_TCK)
    pids=$(sd_pids)
    for p in $pids; do t0[$p]=$(cpu_ticks "$p"); done
    sleep 1
    for p in $pids; do
        local now
        now=$(cpu_ticks "$p")
        [ -n "$now" ] && [ $((now - ${t0[$p]:-0})) -gt $((hz / 10)) ] && echo "$p"
    done
}

# A non-interactive call whose progress the user cancels: Filters > Repeat (Ctrl+F in the image
# window, run with the last values: a 400-step img2img made through the Script-Fu server) shows
# the resident's progress in the image window's status bar; its Cancel button is clicked during
# the generation.  GIMP then ends the resident and the call comes back cancelled: within 3 s no
# gimp-sd process is left, none uses CPU afterwards (the filter must not generate again in its
# own process, which would also add a layer later), the image is clean, its layers and size the
# same, saved as XCF byte for byte the same file, and GIMP reports no error.  (A call through the
# Script-Fu server cannot be cancelled: GIMP shows no progress for it.)  GIMP ends the resident,
# so later calls of this GIMP session run in their own process: this test comes last.
gui_progress_cancel() {
    local t=progress-cancel reply img dlg res i hz t0 now busy log_lines
    hz=$(getconf CLK_TCK)
    cp "$in/rgb.png" "$work/ui-$t.png"
    reply=$(sf "(sd-ui-prepare \"$t\")") || { bad "$t" "prepare: $reply"; return; }
    img=$(wait_window "ui-$t\\.png" 10) || { bad "$t" "no image window"; return; }
    # img2img run from its menu entry once (its dialog, closed at once) becomes Filters > Repeat
    xdo windowfocus --sync "$img" key --clearmodifiers ctrl+alt+2
    dlg=$(wait_window '^Stable Diffusion: Image to Image$' 30) ||
        { ui_fail "$t" "the dialog did not open"; sf "(sd-ui-close)" >/dev/null; return; }
    ui_dlg=$dlg
    xdo windowfocus --sync "$dlg"
    wait_stable "$dlg"
    ui_key alt+c
    wait_title "$dlg" . 10 not
    # the last values: 400 steps at full strength (a few seconds in the resident)
    reply=$(sf "(sd-ui-reply (lambda () (sd-call \"plug-in-sd-img2img\" \
(list sd-ui-img (sd-active sd-ui-img)) '((\"steps\" . 400) (\"strength\" . 1.0) (\"seed\" . 7)))))")
    case $reply in *SD-UI-OK*) ;; *) bad "$t" "the first call: ${reply:-no reply}"; return ;; esac
    reply=$(sf "(sd-ui-reply (lambda () (nth 4 (sd-status))))")
    res=${reply#*SD-UI-OK }
    res=${res%% *}
    res=${res//[!0-9]/}
    [ -n "$res" ] && sd_pids | grep -qx "$res" ||
        { bad "$t" "no resident process: $reply"; return; }
    reply=$(sf "(sd-ui-mark-clean \"$t--repeat\")")
    case $reply in *SD-UI-OK*) ;; *) bad "$t" "before: ${reply:-no reply}"; return ;; esac
    log_lines=$(wc -l <"$work/session-gui.log")

    # Ctrl+F; once the resident has generated for 0.5 s, Cancel in the status bar
    t0=$(cpu_ticks "$res")
    xdo windowfocus --sync "$img" key --clearmodifiers ctrl+f
    for i in $(seq 100); do
        now=$(cpu_ticks "$res")
        [ -n "$now" ] && [ $((now - t0)) -ge $((hz / 2)) ] && break
        sleep 0.05
    done
    [ -n "$now" ] && [ $((now - t0)) -ge $((hz / 2)) ] ||
        { ui_fail "$t" "the repeated call did not generate in the resident"; return; }
    wait_title "$img" ', 2 layers\)' 1 ||
        { ui_fail "$t" "the repeat ended before Cancel could be pressed"; return; }
    shot "$img" progress-cancel
    xdo mousemove --window "$img" 775 750 click 1

    # GIMP ends the resident; then nothing generates, and the filter process ends too
    for i in $(seq 30); do sd_pids | grep -qx "$res" || break; sleep 0.1; done
    if sd_pids | grep -qx "$res"; then
        ui_fail "$t" "the resident still runs 3 s after Cancel"
        return
    fi
    busy=$(sd_busy)
    if [ -n "$busy" ]; then
        bad "$t" "after Cancel gimp-sd generates again (pids $(echo $busy))"
        for i in $busy; do kill "$i"; done
        sleep 1
        return
    fi
    for i in $(seq 20); do [ -z "$(sd_pids)" ] && break; sleep 0.1; done
    [ -z "$(sd_pids)" ] ||
        { bad "$t" "the filter process still runs after Cancel ($(echo $(sd_pids)))"; return; }
    sleep 1
    reply=$(sf "(sd-ui-check-clean \"$t--repeat\")")
    case $reply in *SD-UI-OK*) ;; *) bad "$t" "after Cancel: ${reply:-no reply}"; return ;; esac
    if tail -n +$((log_lines + 1)) "$work/session-gui.log" | grep -q 'plug-in-sd-img2img'; then
        bad "$t" "GIMP reported an error after Cancel: $(tail -n +$((log_lines + 1)) \
"$work/session-gui.log" | grep -m1 'plug-in-sd-img2img')"
        return
    fi
    sf "(sd-ui-close)" >/dev/null
    cmp -s "$work/out/$t--repeat-pre.xcf" "$work/out/$t--repeat-post.xcf" ||
        { bad "$t" "the image changed (XCF before and after differ)"; return; }
    ok "$t"
}

gui_dialogs() {
    local t0=$SECONDS
    mkdir -p "$work/screenshots"
    gui_dialog txt2img 1 "Text to Image" 0 "${txt2img_want[@]}"
    gui_dialog img2img 2 "Image to Image" 0 "steps=3" "strength=0.5"
    gui_dialog inpaint 3 "Inpaint" 0 "steps=3" "mask-blur=2" "masked-content=fill"
    gui_dialog outpaint 4 "Outpaint" 24 "steps=3" "extend-left=8" "extend-right=16" \
        "cfg-scale=-1" "sampler=auto"
    gui_dialog denoise 5 "Denoise" 0 "steps=3" "strength=-1"
    gui_last_values
    gui_no_models
    echo "      gui dialogs: 7 tests, $((SECONDS - t0)) s; screenshots in $work/screenshots"
}

gui_tests() {
    local t0=$SECONDS
    gui_start || { gui_cleanup; return; }
    gui_undo
    gui_dialogs
    gui_progress_cancel
    gui_stop
    echo "      session-gui: $((SECONDS - t0)) s"
}
