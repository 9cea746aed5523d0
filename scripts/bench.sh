#!/usr/bin/env bash
# Benchmarks pam_mfa.so against google-authenticator-libpam and pam_oath, side by side.
#
# Every module is loaded into the real libpam through a pam_wrapper service directory, with
# made-up accounts from nss_wrapper, and a small C harness (benches/pam_bench.c) runs
# pam_start / pam_authenticate / pam_end for many enrolled accounts with valid TOTP codes,
# interleaving the modules so that their ratios hold on a noisy machine. It does so with
# 1,000, 10,000 and 100,000 enrolled accounts; then the wrong-code and locked-out paths,
# the peak RSS of loading a module, the cost of loading it, and the decision path alone as
# a criterion micro-benchmark (benches/decision.rs). Last, the fleet store on a private
# PostgreSQL beside the file store, 16 clients over two hosts (benches/fleet.sh). A syslog
# sink listens on /dev/log for the run when the host has none. Nothing in /etc is touched.
#
#   scripts/bench.sh            install the packages, build, run it all (15 to 30 minutes),
#                               write benches/results/{results.md,latency.svg,*.tsv}
#   scripts/bench.sh --quick    a smoke run: 200 and 2,000 accounts, 100 logins each, a
#                               short micro-benchmark; writes target/bench-quick/
#
# Needs root (apt-get, /dev/log) and Rust. BENCHMARKS.md explains the method and a run.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/bench.sh [--quick] [--no-install] [--no-build] [--no-micro] [--no-tmpfs] [--keep]
                        [--no-fleet | --fleet-only] [--scales "N N ..."] [--logins K] [--out DIR]

  --quick        smoke run: scales "200 2000", 100 accounts logging in, one measured round,
                 short micro-benchmark; results in target/bench-quick unless --out
  --no-install   do not run apt-get (scripts/deps.sh and the peer modules)
  --no-build     use target/release/libpam_mfa.so as it is
  --no-micro     skip the criterion micro-benchmark
  --no-tmpfs     skip the second pass with the stores on tmpfs (flushes cost nothing there)
  --keep         keep the work directory (100,000 accounts take about 800 MB)
  --no-fleet     skip the fleet store (benches/fleet.sh)
  --fleet-only   only the fleet store beside the file store (a few minutes)
  --scales LIST  enrolled accounts per run (default "1000 10000 100000")
  --logins K     accounts that log in at every scale (default 1000; each logs in
                 2 times for warm-up and 2 times measured, pam_oath once)
  --out DIR      where the results go (default benches/results)
USAGE
}

arguments="$*"
quick=0
install=1
build=1
micro=1
tmpfs=1
keep=0
fleet=1
peers=1
scales=""
subset=""
out=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --no-install) install=0 ;;
        --no-build) build=0 ;;
        --no-micro) micro=0 ;;
        --no-tmpfs) tmpfs=0 ;;
        --keep) keep=1 ;;
        --no-fleet) fleet=0 ;;
        --fleet-only) peers=0 micro=0 ;;
        --scales)
            scales=${2:?--scales needs a list}
            shift
            ;;
        --logins)
            subset=${2:?--logins needs a number}
            shift
            ;;
        --out)
            out=${2:?--out needs a directory}
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
    shift
done

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
# Results readable by all; the stores get their own modes (setup_accounts.py).
umask 022

if [ "$quick" -eq 1 ]; then
    scales=${scales:-"200 2000"}
    subset=${subset:-100}
    rounds=1
    contend_logins=50
    fleet_args=(--logins 5 --runs 1 --race-rounds 5)
    criterion_args=(--warm-up-time 0.3 --measurement-time 1)
    out=${out:-"$repo_root/target/bench-quick"}
else
    scales=${scales:-"1000 10000 100000"}
    subset=${subset:-1000}
    rounds=2
    contend_logins=200
    fleet_args=(--logins 25 --runs 3 --race-rounds 50)
    criterion_args=()
    out=${out:-"$repo_root/benches/results"}
fi
warmup=2
# fail_delay_ms = 0 in the policy, and the harness sets PAM_FAIL_DELAY: no deliberate sleep.
max_failures=5

die() {
    echo "bench: $*" >&2
    exit 1
}

section() {
    printf '\n==== %s ====\n' "$*" >&2
}

[ "$(id -u)" -eq 0 ] || die "run as root: it installs packages and may have to create /dev/log"

# ---------------------------------------------------------------------------------------
# Packages: what the tests need (scripts/deps.sh), the two peer modules, libcrypto's
# headers for the harness's HMAC, and gnuplot for the plot.

peer_packages=(libpam-google-authenticator libpam-oath libssl-dev gnuplot-nox python3)
if [ "$install" -eq 1 ]; then
    section "Packages"
    scripts/deps.sh
    missing=()
    for package in "${peer_packages[@]}"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)" = installed ] ||
            missing+=("$package")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    fi
fi

security_dir=/lib/x86_64-linux-gnu/security
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
for dir in "/lib/$multiarch/security" "/usr/lib/$multiarch/security" /lib/security; do
    if [ -f "$dir/pam_permit.so" ]; then
        security_dir=$dir
        break
    fi
done
ga_module="$security_dir/pam_google_authenticator.so"
oath_module="$security_dir/pam_oath.so"
permit_module="$security_dir/pam_permit.so"
for module in "$ga_module" "$oath_module" "$permit_module"; do
    [ -f "$module" ] || die "$module is missing: run without --no-install"
done

find_library() {
    local ldconfig
    ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
    # awk reads to the end: leaving early would kill ldconfig with SIGPIPE, and pipefail
    # would turn that into a failure.
    "$ldconfig" -p | awk -v name="$1" '$1 == name && !found { print $NF; found = 1 }'
}
pam_wrapper_lib=$(find_library libpam_wrapper.so)
nss_wrapper_lib=$(find_library libnss_wrapper.so)
[ -n "$pam_wrapper_lib" ] || die "libpam_wrapper.so not found: run without --no-install"
[ -n "$nss_wrapper_lib" ] || die "libnss_wrapper.so not found: run without --no-install"

# ---------------------------------------------------------------------------------------
# Build: the module, then the micro-benchmark of the decision path.

target_dir=${CARGO_TARGET_DIR:-"$repo_root/target"}
mfa_module="$target_dir/release/libpam_mfa.so"
if [ "$build" -eq 1 ]; then
    section "Build (cargo build --release --locked)"
    cargo build --release --locked
fi
[ -f "$mfa_module" ] || die "$mfa_module is missing: run without --no-build"

mkdir -p "$out"
rm -f "$out"/{logins-disk,logins-tmpfs,nss,pinned,rss,load,fleet}.tsv

if [ "$micro" -eq 1 ]; then
    section "Decision path (cargo bench --bench decision)"
    rm -rf "$target_dir/criterion"
    cargo bench --locked --bench decision -- "${criterion_args[@]}"
fi

# ---------------------------------------------------------------------------------------
# The sandbox: work directories (removed on exit unless --keep), one on disk and one on
# tmpfs, and, if the host has no syslog socket, a sink on /dev/log that discards what it
# gets. Without one, syslog(3) falls back to the console and costs every module that logs
# about 1.3 ms a line.

work=$(mktemp -d "${TMPDIR:-/var/tmp}/pam-mfa-bench.XXXXXX")
shm_work=""
if [ "$tmpfs" -eq 1 ]; then
    [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] || die "/dev/shm is not a tmpfs: use --no-tmpfs"
    shm_work=$(mktemp -d /dev/shm/pam-mfa-bench.XXXXXX)
fi
sink_pid=""
cleanup() {
    if [ -n "$sink_pid" ]; then
        kill "$sink_pid" 2>/dev/null || true
        wait "$sink_pid" 2>/dev/null || true
        rm -f /dev/log
    fi
    if [ "$keep" -eq 1 ]; then
        echo "bench: work directories kept: $work $shm_work" >&2
    else
        rm -rf "$work" ${shm_work:+"$shm_work"}
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
case "$work$shm_work$mfa_module" in
    *[[:space:]]*) die "PAM arguments cannot hold spaces: $work, $shm_work, $mfa_module" ;;
esac

if [ -S /dev/log ]; then
    syslog_note="the host's own /dev/log"
else
    [ -e /dev/log ] && die "/dev/log exists and is not a socket"
    python3 -c '
import socket
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
sock.bind("/dev/log")
while True:
    sock.recv(65536)
' &
    sink_pid=$!
    for _ in $(seq 50); do
        [ -S /dev/log ] && break
        sleep 0.1
    done
    [ -S /dev/log ] || die "the syslog sink did not start"
    syslog_note="a discarding sink started by bench.sh (the host has no syslog daemon)"
fi

section "Harness (benches/pam_bench.c)"
cc -O2 -Wall -Wextra -o "$work/pam_bench" benches/pam_bench.c -lpam -lcrypto -ldl

# ---------------------------------------------------------------------------------------
# The machine, for BENCHMARKS.md.

{
    echo "date:        $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit:      $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ modified)')"
    echo "command:     scripts/bench.sh${arguments:+ $arguments}"
    echo "cpu:         $(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "memory:      $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "kernel:      $(uname -sr)"
    # shellcheck disable=SC1091 # the host's file
    echo "os:          $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "storage:     disk: $work: $(findmnt -n -o FSTYPE,SOURCE,OPTIONS --target "$work" 2>/dev/null || stat -f -c %T "$work")"
    [ -z "$shm_work" ] || echo "             tmpfs: $shm_work"
    echo "syslog:      $syslog_note"
    echo "libpam:      $(dpkg-query -W -f='${Version}' libpam0g 2>/dev/null)"
    echo "peers:       libpam-google-authenticator $(dpkg-query -W -f='${Version}' libpam-google-authenticator 2>/dev/null), libpam-oath $(dpkg-query -W -f='${Version}' libpam-oath 2>/dev/null)"
    echo "rustc:       $(rustc --version 2>/dev/null)"
    echo "logins:      $subset accounts log in at each scale: $warmup warm-up + $rounds measured logins each (pam_oath: 1, no warm-up)"
    echo "fsync before: $(python3 benches/fsync_probe.py "$work")"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"
cat "$out/machine.txt" >&2

# ---------------------------------------------------------------------------------------

unexpected() {
    echo "bench: some logins did not end as expected: see the failed column" >&2
}

# stores DIR ACCOUNTS: ACCOUNTS enrolled accounts for all three modules under DIR.
stores() {
    mkdir -p "$1"
    python3 benches/setup_accounts.py --accounts "$2" --subset "$subset" --dir "$1"
}

# services BASE SCALE...: one PAM service per module and scale in BASE/pam.d, named
# bench-MODULE@SCALE, with the stores of BASE/SCALE; and the pam_permit floor.
services() {
    local base=$1 scale dir
    shift
    mkdir -p "$base/pam.d" "$base/scratch"
    echo "auth required $permit_module" >"$base/pam.d/bench-permit"
    for scale in "$@"; do
        dir="$base/$scale"
        echo "auth required $mfa_module config=$dir/policy.toml" >"$base/pam.d/bench-mfa@$scale"
        echo "auth required $ga_module secret=$dir/ga/\${USER} user=root" \
            >"$base/pam.d/bench-ga@$scale"
        echo "auth required $oath_module usersfile=$dir/oath/users.oath window=1 digits=6" \
            >"$base/pam.d/bench-oath@$scale"
    done
    chmod 0644 "$base/pam.d"/*
}

# wrapped BASE PASSWD COMMAND...: runs COMMAND under pam_wrapper (BASE/pam.d) and
# nss_wrapper (PASSWD, BASE/group).
wrapped() {
    local base=$1 passwd=$2
    shift 2
    env LC_ALL=C \
        LD_PRELOAD="$pam_wrapper_lib $nss_wrapper_lib" \
        PAM_WRAPPER=1 \
        PAM_WRAPPER_SERVICE_DIR="$base/pam.d" \
        PAM_WRAPPER_DEBUGLEVEL=0 \
        NSS_WRAPPER_PASSWD="$passwd" \
        NSS_WRAPPER_GROUP="$base/group" \
        BENCH_SCRATCH="$base/scratch" \
        "$@" 2> >(grep -v '_pam_init_handlers: no default config other' >&2)
}

# contention BASE: 16 processes log one account in at once, over and over, with wrong codes
# (each login takes the account's state lock twice and writes the state under it): how
# long a login waits for that lock (issue 18, item 15). Results in contend.tsv.
contention() {
    local base=$1 user secret
    read -r user secret <"$base/accounts.txt"
    # As the scale's policy, but the wrong codes never lock the account for long.
    sed -e 's/^max_failures = .*/max_failures = 1000/' \
        -e 's/^lockout_seconds = .*/lockout_seconds = 1/' \
        "$base/$first_scale/policy.toml" >"$base/contend.toml"
    echo "auth required $mfa_module config=$base/contend.toml" >"$base/pam.d/bench-contend"
    section "Contention: 16 processes logging in to one account at once"
    wrapped "$base" "$base/passwd" "$work/pam_bench" contend 16 "$contend_logins" \
        bench-contend "$user" "$secret" | tee -a "$out/contend.tsv" || unexpected
}

# module_services SCALE...: the harness's service list: each module at each scale, with the
# wrong-code path for all and the locked-out path for pam_mfa; pam_oath logs each account in
# once, without warm-up (every one of its logins rewrites the whole users file).
module_services() {
    local scale
    for scale in "$@"; do
        printf '%s\n' "bench-mfa@$scale:wl" "bench-ga@$scale:w" "bench-oath@$scale:1w"
    done
}

read -r -a scale_list <<<"$scales"
first_scale=${scale_list[0]}

# run_pass STORAGE BASE: the stores of every scale under BASE, then ONE harness run that
# interleaves every module at every scale with the references, so the ratios between
# modules and between scales hold while the machine's load and flush latency drift.
# Results in logins-STORAGE.tsv. The disk pass also times NSS with every account in passwd
# and measures the peak RSS and the load cost; the tmpfs pass also runs with the modules
# kept loaded.
run_pass() {
    local storage=$1 base=$2 scale rss_user rss_secret pair
    local -a list
    for scale in "${scale_list[@]}"; do
        section "Stores with $scale enrolled accounts on $storage"
        stores "$base/$scale" "$scale"
    done
    # passwd, group and accounts.txt are the same at every scale.
    cp "$base/$first_scale"/{passwd,group,accounts.txt,rss.txt} "$base/"
    services "$base" "${scale_list[@]}"
    mapfile -t list < <(module_services "${scale_list[@]}")

    section "Logins, stores on $storage: ${scale_list[*]} enrolled accounts, interleaved"
    wrapped "$base" "$base/passwd" "$work/pam_bench" run -s - -w "$warmup" -r "$rounds" \
        -f "$max_failures" "$base/accounts.txt" bench-permit @nss @syslog @fdatasync \
        "${list[@]}" | tee -a "$out/logins-$storage.tsv" || unexpected

    if [ "$storage" = disk ]; then
        section "NSS with every account in passwd"
        for scale in "${scale_list[@]}"; do
            wrapped "$base" "$base/$scale/passwd-all" "$work/pam_bench" run -s "$scale" \
                -w 0 -r 1 "$base/accounts.txt" @nss | tee -a "$out/nss.tsv" || unexpected
        done
        section "Peak RSS and load cost"
        read -r rss_user rss_secret <"$base/rss.txt"
        for pair in "bench-permit $permit_module" "bench-mfa@$first_scale $mfa_module" \
            "bench-ga@$first_scale $ga_module" "bench-oath@$first_scale $oath_module"; do
            # shellcheck disable=SC2086 # two words: service and module
            set -- $pair
            wrapped "$base" "$base/passwd" "$work/pam_bench" rss bench-permit "$1" "$2" \
                "$rss_user" "$rss_secret" | tee -a "$out/rss.tsv" || unexpected
        done
        wrapped "$base" "$base/passwd" "$work/pam_bench" load 200 "$mfa_module" \
            "$ga_module" "$oath_module" "$permit_module" | tee -a "$out/load.tsv"
        contention "$base"
    fi
    if [ "$storage" = tmpfs ]; then
        section "$first_scale enrolled accounts on tmpfs, modules kept loaded"
        local pinned="$base/pinned"
        stores "$pinned/$first_scale" "$first_scale"
        cp "$pinned/$first_scale"/{passwd,group,accounts.txt} "$pinned/"
        services "$pinned" "$first_scale"
        mapfile -t list < <(module_services "$first_scale")
        wrapped "$pinned" "$pinned/passwd" "$work/pam_bench" run -s - -w "$warmup" \
            -r "$rounds" -f "$max_failures" -P "$mfa_module" -P "$ga_module" \
            -P "$oath_module" -P "$permit_module" "$pinned/accounts.txt" bench-permit @nss \
            @syslog "${list[@]}" | tee -a "$out/pinned.tsv" || unexpected
    fi
    [ "$keep" -eq 1 ] || rm -rf "$base"
}

if [ "$peers" -eq 1 ]; then
    run_pass disk "$work/disk"
    [ -z "$shm_work" ] || run_pass tmpfs "$shm_work"
fi
if [ "$fleet" -eq 1 ]; then
    section "Fleet: PostgreSQL with TLS beside the file store, two hosts (benches/fleet.sh)"
    benches/fleet.sh "$work/pam_bench" "$target_dir/release" "$out" "${fleet_args[@]}"
fi

{
    echo "fsync after: $(python3 benches/fsync_probe.py "$work")"
    echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$out/machine.txt"

section "Report"
python3 benches/report.py "$out" --criterion "$target_dir/criterion"
echo "bench: results in $out/results.md$([ "$peers" -eq 0 ] || echo ", plot in $out/latency.svg")" >&2
