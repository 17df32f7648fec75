#!/usr/bin/env bash
# System packages for the C++ sample (samples/cpp, tests/test_cpp_host.py): Debian 12's
# OpenCV 4.6 dev files, CMake, g++ and nlohmann-json; and Chromium, the browser that
# tests/app/test_app.py drives with Playwright (its own browser download is not used).
# Idempotent and quiet; needs root.
set -euo pipefail
PACKAGES=(libopencv-dev cmake g++ nlohmann-json3-dev pkg-config chromium)
if dpkg-query -W -f='${Status}\n' "${PACKAGES[@]}" 2>/dev/null | grep -qv '^install ok installed$' \
    || [ "$(dpkg-query -W -f='${Status}\n' "${PACKAGES[@]}" 2>/dev/null | wc -l)" -ne "${#PACKAGES[@]}" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi
