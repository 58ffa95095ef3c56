#!/usr/bin/env bash
# Installs the Debian packages TokenCompression builds against (OpenBLAS, libpng/libjpeg, stb, FFmpeg's
# libavformat/libavcodec/libswscale/libavutil for video input).
# Works as root (containers, CI images: no sudo needed) and as a user with sudo.
# `--dry-run` prints the commands instead of running them.
set -euo pipefail

PACKAGES=(libopenblas-dev pkg-config libpng-dev libjpeg-dev libstb-dev
          libavformat-dev libavcodec-dev libswscale-dev libavutil-dev)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "tools/setup.sh: not root and no sudo: run it as root, or install ${PACKAGES[*]} yourself" >&2
        exit 1
    fi
fi

run() {
    if [ "${DRY_RUN:-0}" = 1 ]; then echo "$*"; else "$@"; fi
}

[ "${1:-}" = "--dry-run" ] && DRY_RUN=1
export DEBIAN_FRONTEND=noninteractive
run "${SUDO[@]}" apt-get update -qq
run "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
