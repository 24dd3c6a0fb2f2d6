# tests/gimp/bad-input.sh - the bad-input parts of the GIMP tests (docs/bad-input.md, "GIMP
# side"), sourced by run-gimp-tests.sh: they use its variables work, data, out and its
# functions ok, bad, same, check_sel.
#
#   bad_input_models DIR   writes the broken models the err-* tests choose by name: the tiny
#                          checkpoint cut at 4 KB (inside its header) and at 4 MB (inside its
#                          tensors), and one-tensor files whose tensor names say SDXL or LoRA.
#   crash_watch LOG &      kills gimp-sd processes while a crash test generates: each
#                          "SD-CRASH-ARM tag target signal resident-pid" line the test prints
#                          into LOG (target: caller = the filter process, resident = the
#                          resident process) is served once the process doing the work has
#                          used 0.5 s of CPU since; each kill is recorded in crash-kills.log.
#   check_failed NAME      every failing call of a test (sd-fails-cleanly) saved the image
#                          before and after as NAME--what-pre/post.xcf: they must be identical.
#   check_crash NAME       the watcher killed during NAME, then check_failed (err-*) or, for a
#                          call that succeeded anyway, check_sel.

# st_one FILE TENSOR: a valid safetensors file holding one 4x4 F32 tensor of that name
st_one() {
    local json="{\"$2\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,64]}}"
    local n=${#json} i le=""
    for i in 0 1 2 3 4 5 6 7; do le="$le\\x$(printf %02x $(((n >> (8 * i)) & 255)))"; done
    { printf "$le"; printf '%s' "$json"; head -c 64 /dev/zero; } >"$1"
}

bad_input_models() {
    local src=$data/tiny-sd15/model-f16.safetensors
    head -c 4096 "$src" >"$1/cut-4k.safetensors"
    head -c 4000000 "$src" >"$1/cut-4m.safetensors"
    st_one "$1/sdxl.safetensors" "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight"
    st_one "$1/lora.safetensors" "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"
}

# cpu_ticks PID: user + system time of a process in clock ticks (empty when it is gone)
cpu_ticks() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return
    s=${s##*) }
    set -- $s
    echo $((${12} + ${13}))
}

# the gimp-sd processes of this test profile (never anything else on the machine); reads
# each argv[0] with the shell's own read: a subprocess per process made a scan take seconds
# on a loaded machine, long enough for a short generation to end before its kill
sd_pids() {
    local p arg0 bin=$GIMP2_DIRECTORY/plug-ins/gimp-sd/gimp-sd
    for p in /proc/[0-9]*; do
        arg0=""
        { IFS= read -r -d '' arg0 <"$p/cmdline"; } 2>/dev/null
        [ "$arg0" = "$bin" ] && echo "${p#/proc/}"
    done
}

crash_watch() {
    local log=$1 done=0 line tag target sig res worker victim t0 i now hz
    hz=$(getconf CLK_TCK)
    : >"$work/crash-kills.log"
    while sleep 0.1; do
        [ -f "$log" ] || continue
        line=$(grep "SD-CRASH-ARM " "$log" | sed -n "$((done + 1))p")
        [ -n "$line" ] || continue
        done=$((done + 1))
        set -- ${line##*SD-CRASH-ARM }
        tag=$1 target=$2 sig=$3 res=$4
        # the filter process starts after the marker: wait for a gimp-sd that is not the
        # resident
        victim="" worker=""
        for i in $(seq 100); do
            for p in $(sd_pids); do [ "$p" != "$res" ] && victim=$p; done
            [ -n "$victim" ] && break
            sleep 0.1
        done
        [ -n "$victim" ] || { echo "$tag: no filter process" >>"$work/crash-kills.log"; continue; }
        if [ "$res" != 0 ]; then worker=$res; else worker=$victim; fi
        [ "$target" = resident ] && victim=$res
        t0=$(cpu_ticks "$worker")
        for i in $(seq 300); do
            now=$(cpu_ticks "$worker")
            [ -n "$now" ] && [ $((now - t0)) -ge $((hz / 2)) ] && break
            sleep 0.05
        done
        if kill -s "$sig" "$victim" 2>/dev/null; then
            echo "$tag: killed $target $victim with SIG$sig" >>"$work/crash-kills.log"
        else
            echo "$tag: $target $victim was gone" >>"$work/crash-kills.log"
        fi
    done
}

check_failed() {
    local pre
    for pre in "$out/$1--"*-pre.xcf; do
        [ -f "$pre" ] || continue
        cmp -s "$pre" "${pre%-pre.xcf}-post.xcf" ||
            { bad "$1" "a failed call changed the image ($(basename "$pre" -pre.xcf))"; return; }
    done
    ok "$1"
}

check_crash() {
    grep -q "^$1: killed" "$work/crash-kills.log" ||
        { bad "$1" "no process was killed during the call (crash-kills.log)"; return; }
    case $1 in
    err-*) check_failed "$1" ;;
    *) check_sel "$1" ;;
    esac
}
