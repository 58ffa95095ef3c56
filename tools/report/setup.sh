#!/usr/bin/env bash
# What tools/report/check_in_browser.py needs: Debian's Chromium and its driver, and Selenium.
# Works as root or through sudo, like tools/setup.sh.
set -euo pipefail
SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
python3 -m pip install --quiet --root-user-action=ignore selenium
