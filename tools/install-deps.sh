#!/usr/bin/env bash
# tools/install-deps.sh - install the Debian/Ubuntu packages gimp-sd needs to build, test and
# run (uses sudo when not root).  Safe to run again: apt-get skips what is installed.
set -euo pipefail
pkgs=(
    gcc make pkg-config                 # toolchain
    libopenblas-dev                     # portable fp32 GEMM
    libutf8proc-dev                     # Unicode for the CLIP tokenizer
    libpng-dev                          # PNG in/out of the sd CLI
    libgimp2.0-dev gimp                 # the plug-in (brings GEGL, babl, GTK 2) and its tests
    imagemagick                         # pixel checks in the GIMP tests
)
if [ "${SD_DEPS_EXTRA:-}" = "dev" ]; then
    pkgs+=(clang llvm libclang-rt-14-dev xvfb xdotool gtk2-engines-pixbuf)  # fuzz, GUI tests
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
echo "install-deps: ${#pkgs[@]} packages present"
