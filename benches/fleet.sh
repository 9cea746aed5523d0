#!/usr/bin/env bash
# The fleet store's login path beside the file store's, in one run (issue 15).
#
# Two "hosts" are two policy files: for the fleet store both name one private PostgreSQL
# (tests/pg/start.sh --durable: TLS with client certificates, fsync and synchronous commit
# on), for the file store each has a store directory of its own. Logins go through the real
# libpam (service files read with pam_start_confdir), the built module and, for the fleet store, the
# helper pam-mfa-check that the module hands them to. The helper clears its environment,
# so the accounts are the host's own (the first 18 of /etc/passwd other than root),
# enrolled with HOTP secrets made here; nothing outside the work directory changes.
#
#   benches/fleet.sh PAM_BENCH RELEASE_DIR OUT_DIR [--logins N] [--runs N] [--race-rounds N]
#
# Writes OUT_DIR/fleet.tsv:
#   clients STORE clients logins median_us p90_us p99_us max_us logins_per_s failed
#       16 clients (one account each, 8 per host), then 2 (one per host), logging in N
#       times in a row, every login a new HOTP code; the stores alternate run by run.
#   race STORE rounds clients one more none max_accepted
#       one valid code sent by 16 clients at once, 8 to each host, per round: how many
#       rounds let exactly one, more than one, or no login in.
#   lockout STORE accounts guesses max_failures checked_min checked_max left_open
#       16 wrong codes at once over both hosts, per account, with max_failures = 10: how
#       many of them were checked against the secret (the rest refused as locked), and the
#       accounts that a valid code still opened afterwards.
# Run as root (the module reads root's store; PostgreSQL runs as postgres). scripts/bench.sh
# calls it and puts the figures into results.md.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pam_bench=${1:?usage: benches/fleet.sh PAM_BENCH RELEASE_DIR OUT_DIR [--logins N] [--runs N] [--race-rounds N]}
release=${2:?RELEASE_DIR}
out=${3:?OUT_DIR}
shift 3
logins=25
runs=3
race_rounds=50
while [ "$#" -gt 0 ]; do
    case "$1" in
        --logins) logins=${2:?--logins needs a number} ;;
        --runs) runs=${2:?--runs needs a number} ;;
        --race-rounds) race_rounds=${2:?--race-rounds needs a number} ;;
        *) echo "benches/fleet.sh: unknown argument: $1" >&2 && exit 2 ;;
    esac
    shift 2
done
clients=16
max_failures=10

die() {
    echo "benches/fleet.sh: $*" >&2
    exit 1
}
[ "$(id -u)" -eq 0 ] || die "run as root"
for path in "$pam_bench" "$release/libpam_mfa.so" "$release/pam-mfa" "$release/pam-mfa-check"; do
    [ -x "$path" ] || [ -f "$path" ] || die "$path is missing"
done
work=$(mktemp -d /tmp/pam-mfa-fleet.XXXXXX)
sink_pid=""
cleanup() {
    [ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null || true
    "$repo_root/tests/pg/start.sh" --stop "$work/pg"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
"$repo_root/tests/pg/start.sh" "$work/pg" --owner-pid $$ --durable >&2
# shellcheck disable=SC1091 # written by tests/pg/start.sh
. "$work/pg/env"

# The audit lines go to a socket of the run's own that discards them (a host's syslog
# daemon would take them; without one, syslog(3)'s console fallback costs ~1 ms a line).
python3 -c '
import socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
sock.bind(sys.argv[1])
while True:
    sock.recv(65536)
' "$work/audit.sock" &
sink_pid=$!

install -d -m 0755 "$work/bin" "$work/pam.d"
install -m 0755 "$release/pam-mfa-check" "$work/bin/"
install -m 0755 "$release/pam-mfa" "$work/bin/"
install -m 0644 "$release/libpam_mfa.so" "$work/bin/"
pam_mfa="$work/bin/pam-mfa"
head -c 32 /dev/urandom >"$work/store.key"
chmod 0600 "$work/store.key"

# store_table ROLE: the [store] table of a policy connecting as ROLE.
store_table() {
    local cert=$PAM_MFA_PG_MODULE_CERT key=$PAM_MFA_PG_MODULE_KEY
    if [ "$1" = pam_mfa_admin ]; then
        cert=$PAM_MFA_PG_ADMIN_CERT key=$PAM_MFA_PG_ADMIN_KEY
    fi
    cat <<TOML

[store]
backend = "postgresql"
connection = "host=localhost hostaddr=127.0.0.1 port=$PAM_MFA_PG_PORT dbname=pam_mfa user=$1"
ca_file = "$PAM_MFA_PG_CA"
cert_file = "$cert"
key_file = "$key"
secret_key_file = "$work/store.key"
timeout_seconds = 3
TOML
}

# host NAME MAX_FAILURES [ROLE]: policy NAME.toml (a fleet host when ROLE is given, else a
# file store of its own) and the PAM service NAME that uses it.
host() {
    install -d -m 0700 "$work/$1.d"
    {
        printf 'store_dir = "%s"\ndefault_mode = "required"\nfail_delay_ms = 0\n' "$work/$1.d"
        printf 'max_failures = %s\nlockout_seconds = 600\n' "$2"
        [ -z "${3:-}" ] || store_table "$3"
    } >"$work/$1.toml"
    printf 'auth required %s config=%s helper=%s log_socket=%s\n' "$work/bin/libpam_mfa.so" \
        "$work/$1.toml" "$work/bin/pam-mfa-check" "$work/audit.sock" >"$work/pam.d/$1"
}
host admin 1000 pam_mfa_admin
for side in a b; do
    host "fleet-$side" 1000 pam_mfa_module
    host "fleet-lock-$side" "$max_failures" pam_mfa_module
    host "file-$side" 1000
    host "file-lock-$side" "$max_failures"
    # The file store's lockout hosts share their host's store.
    sed -i "s#^store_dir = .*#store_dir = \"$work/file-$side.d\"#" "$work/file-lock-$side.toml"
done
"$pam_mfa" store init --config "$work/admin.toml" >&2

# enroll_all FILE USER...: a new HOTP secret for each USER, in the fleet store and in the
# store of the file host it logs in to (the i-th through host a when i is even), listed in
# FILE as `user secret` lines.
enroll_all() {
    local file=$1 i=0 user secret config
    shift
    : >"$file"
    for user in "$@"; do
        secret=$(head -c 20 /dev/urandom | base32 | tr -d '=')
        printf '%s %s\n' "$user" "$secret" >>"$file"
        for config in admin "file-$([ $((i % 2)) -eq 0 ] && echo a || echo b)"; do
            printf '%s\n' "$secret" | "$pam_mfa" enroll --config "$work/$config.toml" \
                "$user" --hotp --secret-stdin --no-confirm >/dev/null || die "enroll $user ($config)"
        done
        i=$((i + 1))
    done
}
# The host's own accounts: 16 for the parallel clients, 2 more for a client per host alone.
mapfile -t users < <(awk -F: '$3 != 0 { print $1 }' /etc/passwd | head -n "$((clients + 2))")
[ "${#users[@]}" -eq "$((clients + 2))" ] ||
    die "needs $((clients + 2)) accounts other than root in /etc/passwd"
enroll_all "$work/accounts.txt" "${users[@]:0:clients}"
enroll_all "$work/pair.txt" "${users[@]:clients:2}"

# Service files from $work/pam.d, through libpam itself (pam_start_confdir): pam_wrapper's
# copy of them is not safe for 16 processes starting at once.
wrapped() {
    env LC_ALL=C PAM_BENCH_CONFDIR="$work/pam.d" "$@"
}

# measure STORE CLIENTS ACCOUNTS FIRST_COUNTER LOGINS [DEST]: one run of CLIENTS clients
# over STORE's two hosts. Every login of a run succeeds (or the run says it failed), so
# after it every account's next counter is FIRST_COUNTER + LOGINS, in both stores alike.
measure() {
    wrapped "$pam_bench" clients "$1" "$2" "$5" "$4" "$3" "$1-a" "$1-b" |
        tee -a "${6:-$out/fleet.tsv}" >&2
}
: >"$out/fleet.tsv"
echo "fleet: warm-up, then $runs runs per store of $clients clients, then of 2, $logins logins each" >&2
for store in file fleet; do
    measure "$store" "$clients" "$work/accounts.txt" 0 2 /dev/null
    measure "$store" 2 "$work/pair.txt" 0 2 /dev/null
done
next=2
for _ in $(seq "$runs"); do
    for store in file fleet; do
        measure "$store" "$clients" "$work/accounts.txt" "$next" "$logins"
        measure "$store" 2 "$work/pair.txt" "$next" "$logins"
    done
    next=$((next + logins))
done

# Race and lockout use accounts 1 to 11 with new secrets, enrolled on both file hosts too (as
# a fleet without a shared store must), so every counter starts at 0 everywhere.
: >"$work/fresh.txt"
head -n 11 "$work/accounts.txt" | while read -r user _; do
    secret=$(head -c 20 /dev/urandom | base32 | tr -d '=')
    printf '%s %s\n' "$user" "$secret" >>"$work/fresh.txt"
    for config in admin file-a file-b; do
        printf '%s\n' "$secret" | "$pam_mfa" enroll --config "$work/$config.toml" "$user" \
            --hotp --secret-stdin --no-confirm --force >/dev/null 2>&1 || die "enroll $user ($config)"
    done
done

# race STORE SERVICE_A SERVICE_B: the first account, one valid code per round.
race() {
    local user secret round result one=0 more=0 none=0 max=0
    read -r user secret <"$work/fresh.txt"
    for round in $(seq "$race_rounds"); do
        result=$(wrapped "$pam_bench" burst "$clients" "$user" \
            "$(oathtool --hotp -b "$secret" -c "$((round - 1))")" "$2" "$3" | cut -f4)
        if [ "$result" -eq 1 ]; then
            one=$((one + 1))
        elif [ "$result" -gt 1 ]; then
            more=$((more + 1))
        else
            none=$((none + 1))
        fi
        [ "$result" -le "$max" ] || max=$result
    done
    printf 'race\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$race_rounds" "$clients" "$one" "$more" \
        "$none" "$max" | tee -a "$out/fleet.tsv" >&2
}
echo "fleet: $race_rounds rounds of one code sent $clients times at once" >&2
race file file-a file-b
race fleet fleet-a fleet-b

# wrong SECRET: a six-digit code that none of the first 20 counters make.
wrong() {
    local valid candidate=0
    valid=$(oathtool --hotp -b "$1" -c 0 -w 20)
    while grep -qx "$(printf '%06d' "$candidate")" <<<"$valid"; do
        candidate=$((candidate + 1))
    done
    printf '%06d' "$candidate"
}

# lockout STORE SERVICE_A SERVICE_B: accounts 2 to 11, each sent 16 wrong codes at once
# (8 per host), then its valid code for counter 0 on host A. A wrong code that the store
# let through to the check ends in PAM_AUTH_ERR; one refused because the account is locked
# (no check) in PAM_MAXTRIES: the first count is the guesses an attacker got.
lockout() {
    local user secret checked min=999999 max=0 open=0
    while read -r user secret; do
        checked=$(wrapped "$pam_bench" burst "$clients" "$user" "$(wrong "$secret")" "$2" "$3" |
            cut -f5)
        [ "$checked" -ge "$min" ] || min=$checked
        [ "$checked" -le "$max" ] || max=$checked
        if [ "$(wrapped "$pam_bench" burst 1 "$user" \
            "$(oathtool --hotp -b "$secret" -c 0)" "$2" | cut -f4)" -ne 0 ]; then
            open=$((open + 1))
        fi
    done < <(sed -n '2,11p' "$work/fresh.txt")
    printf 'lockout\t%s\t10\t%s\t%s\t%s\t%s\t%s\n' "$1" "$clients" "$max_failures" "$min" \
        "$max" "$open" | tee -a "$out/fleet.tsv" >&2
}
echo "fleet: $clients wrong codes at once over both hosts, max_failures = $max_failures, 10 accounts" >&2
lockout file file-lock-a file-lock-b
lockout fleet fleet-lock-a fleet-lock-b
