#!/usr/bin/env bash
# Installs the Debian packages that building pam-mfa, its tests and the demo need.
#
# Rust itself (rustup, cargo) is expected to be there already; this script only brings the
# C-side pieces: the PAM headers and libraries to link against (and libclang, with which
# pam-sys generates its bindings from those headers), cwrap's pam_wrapper and
# nss_wrapper (a PAM stack and an account database without touching /etc), pamtester
# (drives a PAM stack from the shell), oathtool (computes codes), python3 (the demo's
# small syslog listener), zbar-tools and librsvg2-bin (the tests read back QR codes with
# zbarimg, SVG ones after rsvg-convert),
# libpam-google-authenticator (the import tests use files its command writes), fish (the
# completion tests run the generated completions in bash and fish), man-db (the man page
# tests render the generated pages with `man --warnings -l`) and valgrind
# (tests/conversation.rs runs the module's conversation paths under memcheck), libfaketime
# (tests/hardening.rs runs a login under a clock a day ahead with libfaketime), postgresql
# and openssl (tests/pg/start.sh runs a private PostgreSQL with TLS and certificates it
# makes, for the fleet store's tests; no system service is used), and strace
# (tests/cli.rs checks that a secret on standard input is read a byte at a time).
#
# Outside CI, apt is skipped when every package is already installed; with CI=true it
# always runs `apt-get update` and `apt-get install`, so a fresh machine is set up the same
# way as a warm one.
set -euo pipefail

packages=(
    ca-certificates
    gcc
    libc6-dev
    pkg-config
    libpam0g-dev
    libclang-dev
    libpam-wrapper
    libnss-wrapper
    pamtester
    oathtool
    python3
    zbar-tools
    librsvg2-bin
    libpam-google-authenticator
    fish
    man-db
    valgrind
    libfaketime
    postgresql
    openssl
    strace
)

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "deps.sh: this script needs a Debian-like system (dpkg-query, apt-get)." >&2
    echo "deps.sh: install the equivalents of: ${packages[*]}" >&2
    exit 1
fi

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = "installed" ]
}

missing=()
for package in "${packages[@]}"; do
    is_installed "$package" || missing+=("$package")
done

if [ "${CI:-}" != "true" ] && [ "${#missing[@]}" -eq 0 ]; then
    echo "deps.sh: all packages already installed: ${packages[*]}"
    exit 0
fi

if [ "${#missing[@]}" -gt 0 ]; then
    echo "deps.sh: installing: ${missing[*]}"
else
    echo "deps.sh: CI=true, refreshing: ${packages[*]}"
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "deps.sh: not root and sudo is not installed; as root run:" >&2
        echo "  apt-get update && apt-get install -y --no-install-recommends ${packages[*]}" >&2
        exit 1
    fi
    as_root=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${packages[@]}"
