#!/usr/bin/env bash
# Demo of pam-mfa: real sign-ins through libpam, in a sandbox that touches nothing in /etc.
#
# cwrap's nss_wrapper gives the demo its own passwd and group files, and pam_wrapper its own
# PAM service directory; pamtester drives the stack and oathtool plays the phone. Every
# scenario states the outcome the policy calls for, and the script exits non-zero when the
# module does something else, so it doubles as a smoke test (scripts/test.sh runs it).
#
#   scripts/demo.sh              install packages, build the release, run the demo
#   scripts/demo.sh --no-build   run the demo against the existing target/release build
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/demo.sh [--no-build]

  --no-build   skip scripts/deps.sh and `cargo build --release --locked`; use the
               module and CLI already in target/release
USAGE
}

build=1
while [ "$#" -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
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

if [ "$build" -eq 1 ]; then
    scripts/deps.sh
    cargo build --release --locked
fi

module="$repo_root/target/release/libpam_mfa.so"
cli="$repo_root/target/release/pam-mfa"
service="pam-mfa-demo"

die() {
    echo "demo: $*" >&2
    exit 1
}

[ -f "$module" ] || die "$module is missing: run without --no-build, or cargo build --release --locked"
[ -x "$cli" ] || die "$cli is missing: run without --no-build, or cargo build --release --locked"
for tool in pamtester oathtool python3 base32; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed: run scripts/deps.sh"
done

# Preload the wrappers by absolute path: a preload that the loader cannot find is skipped
# with a mere warning, and pamtester would then read the real /etc/pam.d. They sit beside
# the libpam that pamtester loads (same architecture); the packages do not refresh the
# ldconfig cache, so it is not asked. (No early exit in awk: ldd would die of SIGPIPE.)
libpam=$(ldd "$(command -v pamtester)" | awk '$1 == "libpam.so.0" && !found { print $3; found = 1 }')
[ -n "$libpam" ] || die "cannot find the libpam that pamtester uses"
pam_wrapper_lib="$(dirname "$libpam")/libpam_wrapper.so"
nss_wrapper_lib="$(dirname "$libpam")/libnss_wrapper.so"
[ -f "$pam_wrapper_lib" ] || die "$pam_wrapper_lib not found: run scripts/deps.sh"
[ -f "$nss_wrapper_lib" ] || die "$nss_wrapper_lib not found: run scripts/deps.sh"

# ---------------------------------------------------------------------------------------
# The sandbox: a temporary directory, removed on exit together with the audit listener.

umask 077
work=$(mktemp -d "${TMPDIR:-/tmp}/pam-mfa-demo.XXXXXX")
listener_pid=""
cleanup() {
    if [ -n "$listener_pid" ]; then
        kill "$listener_pid" 2>/dev/null || true
        wait "$listener_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

case "$work$module" in
    *[[:space:]]*) die "PAM arguments cannot hold spaces: move the repository or TMPDIR ($work, $module)" ;;
esac

policy="$work/policy.toml"
store="$work/store"
audit_socket="$work/audit.sock"
audit_log="$work/audit.log"
passwd="$work/passwd"
group="$work/group"
pam_dir="$work/pam.d"

mkdir -m 0700 "$store" "$pam_dir"

cat >"$passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/bash
alice:x:1001:1001:Alice (administrator):/home/alice:/bin/bash
bob:x:1002:1002:Bob (developer):/home/bob:/bin/bash
carol:x:1003:1003:Carol (developer):/home/carol:/bin/bash
PASSWD

cat >"$group" <<'GROUP'
root:x:0:
sudo:x:27:alice
alice:x:1001:
bob:x:1002:
carol:x:1003:
GROUP

cat >"$policy" <<POLICY
# The demo's policy: members of sudo or wheel must give a code; everyone else may.
store_dir = "$store"
default_mode = "optional"

[[rule]]
name = "privileged"
groups = ["sudo", "wheel"]
mode = "required"
POLICY

# pam_permit.so stands in for the password module (pam_unix.so on a real host): the demo has
# no passwords, only the second factor that pam-mfa adds after the first one succeeded.
cat >"$pam_dir/$service" <<PAMCONF
auth required pam_permit.so
auth required $module config=$policy log_socket=$audit_socket
PAMCONF

# A stand-in for syslog: every datagram the module sends lands as one line in audit.log.
: >"$audit_log"
python3 -c '
import socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as log:
    while True:
        log.write(sock.recv(65536).rstrip(b"\n") + b"\n")
' "$audit_socket" "$audit_log" &
listener_pid=$!
for _ in $(seq 50); do
    [ -S "$audit_socket" ] && break
    sleep 0.1
done
[ -S "$audit_socket" ] || die "the audit listener did not start"

nss_env=(
    env LC_ALL=C
    LD_PRELOAD="$nss_wrapper_lib"
    NSS_WRAPPER_PASSWD="$passwd"
    NSS_WRAPPER_GROUP="$group"
)
pam_env=(
    env LC_ALL=C
    LD_PRELOAD="$pam_wrapper_lib $nss_wrapper_lib"
    PAM_WRAPPER=1
    PAM_WRAPPER_SERVICE_DIR="$pam_dir"
    PAM_WRAPPER_DEBUGLEVEL=0
    NSS_WRAPPER_PASSWD="$passwd"
    NSS_WRAPPER_GROUP="$group"
)

declare -A secrets=()

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
heading() {
    printf '\n%s== %s%s\n' "$bold" "$*" "$plain"
}

# enroll USER [brief]: a fresh 160-bit secret, enrolled with the real admin command. The
# first enrollment shows everything the admin sees; "brief" keeps only the otpauth URI, the
# command's own messages and errors.
enroll() {
    local user=$1 detail=${2:-full} secret
    secret=$(head -c 20 /dev/urandom | base32)
    secrets[$user]=$secret
    echo "\$ pam-mfa enroll $user --config $policy --secret-stdin --no-confirm"
    if [ "$detail" = brief ]; then
        "${nss_env[@]}" "$cli" enroll "$user" --config "$policy" --secret-stdin --no-confirm \
            <<<"$secret" 2>&1 |
            sed -n -e '/^otpauth:/p' -e '/^pam-mfa: /p' -e '/enrolled/p' | sed 's/^/  /'
        echo "  (QR code and recovery codes left out)"
    else
        "${nss_env[@]}" "$cli" enroll "$user" --config "$policy" --secret-stdin --no-confirm \
            <<<"$secret" 2>&1 | sed 's/^/  /'
    fi
}

code_now() {
    oathtool --totp -b "${secrets[$1]}"
}

# A code that is wrong for USER: not the code of any step from 30 s ago to 60 s ahead.
wrong_code() {
    local valid candidate
    valid=$(oathtool --totp -b "${secrets[$1]}" -N 'now - 30 sec' -w 3)
    candidate=$(code_now "$1")
    while :; do
        candidate=$(printf '%06d' $(((10#$candidate + 1) % 1000000)))
        grep -qx "$candidate" <<<"$valid" || break
    done
    echo "$candidate"
}

scenarios=0
passed=0
failed=0
expected_audit=()
typed_codes=()

# scenario TITLE USER ANSWER EXPECTED ASKED AUDIT
#   ANSWER    what the user types at the prompt ("-" = nothing, stdin closed)
#   EXPECTED  in | refused
#   ASKED     yes | no: whether the module must show the prompt
#   AUDIT     the mode/rule/outcome fields the audit line must carry
scenario() {
    local title=$1 user=$2 answer=$3 expected=$4 asked=$5 audit=$6
    local output status=0 result was_asked verdict mismatches=()
    scenarios=$((scenarios + 1))
    expected_audit+=("service=$service user=$user rhost=client.example $audit")
    heading "$scenarios. $title"
    output="$work/scenario-$scenarios.out"
    echo "\$ pamtester $service $user authenticate"
    if [ "$answer" = "-" ]; then
        echo "  (types nothing)"
        "${pam_env[@]}" pamtester -I rhost=client.example "$service" "$user" authenticate \
            </dev/null >"$output" 2>&1 || status=$?
    else
        echo "  (types $answer)"
        typed_codes+=("$answer")
        # A here-string, not a pipe: status must be pamtester's alone.
        "${pam_env[@]}" pamtester -I rhost=client.example "$service" "$user" authenticate \
            <<<"$answer" >"$output" 2>&1 || status=$?
    fi
    if grep -q 'Verification code: ' "$output"; then was_asked=yes; else was_asked=no; fi
    # The prompt has no newline of its own (pamtester does not echo the answer): one per line.
    sed -e '/_pam_init_handlers: no default config other/d' \
        -e 's/Verification code: /Verification code: \n/g' "$output" |
        sed -e '/^$/d' -e 's/^/  | /'
    if [ "$status" -eq 0 ]; then result=in; else result=refused; fi

    [ "$result" = "$expected" ] || mismatches+=("expected $expected, got $result")
    [ "$was_asked" = "$asked" ] || mismatches+=("prompt expected: $asked, shown: $was_asked")
    if [ "$expected" = refused ] && ! grep -q 'pamtester: Authentication failure' "$output"; then
        mismatches+=("a refusal must be PAM_AUTH_ERR (\"Authentication failure\")")
    fi
    if [ "${#mismatches[@]}" -eq 0 ]; then
        verdict="as expected"
        passed=$((passed + 1))
    else
        verdict=$(printf '%s; ' "${mismatches[@]}")
        verdict="MISMATCH: ${verdict%; }"
        failed=$((failed + 1))
    fi
    printf '  => %s (asked for a code: %s) -- %s\n' "${result^^}" "$was_asked" "$verdict"
}

# ---------------------------------------------------------------------------------------

heading "Setup"
echo "sandbox:        $work"
echo "accounts:       root (uid 0), alice (group sudo), bob, carol (nss_wrapper)"
echo "preloaded:      $pam_wrapper_lib $nss_wrapper_lib"
echo "PAM stack ($service, pam_wrapper):"
sed 's/^/  /' "$pam_dir/$service"
echo "  (pam_permit.so stands in for the password module: assume the password was right)"
echo "policy ($policy):"
grep -v '^#' "$policy" | sed -e '/^$/d' -e 's/^/  /'
echo
enroll alice
enroll carol brief

scenario "root, not enrolled: uid 0 always needs a code, so any answer is refused" \
    root 000000 refused yes "mode=required rule=root outcome=deny"

heading "Enrolling root"
enroll root brief

code=$(code_now root)
scenario "root, enrolled, types the code from the authenticator" \
    root "$code" in yes "mode=required rule=root outcome=success"

scenario "alice (group sudo, rule privileged: required) types a wrong code" \
    alice "$(wrong_code alice)" refused yes "mode=required rule=privileged outcome=deny"

alice_code=$(code_now alice)
scenario "alice types the right code" \
    alice "$alice_code" in yes "mode=required rule=privileged outcome=success"

scenario "alice replays the code she just used (someone read it over her shoulder)" \
    alice "$alice_code" refused yes "mode=required rule=privileged outcome=deny"

scenario "bob (no rule: default optional), not enrolled: in on the password alone" \
    bob - in no "mode=optional rule=default outcome=ignore"

scenario "carol (default optional), enrolled: she is asked, and her code lets her in" \
    carol "$(code_now carol)" in yes "mode=optional rule=default outcome=success"

# ---------------------------------------------------------------------------------------

heading "Audit log (one syslog datagram per decision, facility auth)"
for _ in $(seq 30); do
    [ "$(wc -l <"$audit_log")" -ge "$scenarios" ] && break
    sleep 0.1
done
sed 's/^/  /' "$audit_log"

audit_problems=()
mapfile -t audit_lines <"$audit_log"
if [ "${#audit_lines[@]}" -ne "$scenarios" ]; then
    audit_problems+=("$scenarios decisions but ${#audit_lines[@]} audit lines")
else
    for i in "${!expected_audit[@]}"; do
        if [[ "${audit_lines[$i]}" != *"${expected_audit[$i]}"* ]]; then
            audit_problems+=("line $((i + 1)) lacks: ${expected_audit[$i]}")
        fi
    done
fi
for user in "${!secrets[@]}"; do
    if grep -q "${secrets[$user]}" "$audit_log"; then
        audit_problems+=("the secret of $user appears in the audit log")
    fi
done
for typed in "${typed_codes[@]}"; do
    if grep -Eq "[= \"]$typed([ \"]|\$)" "$audit_log"; then
        audit_problems+=("the typed code $typed appears in the audit log")
    fi
done
if [ "${#audit_problems[@]}" -eq 0 ]; then
    echo "  => one line per decision, with the expected mode, rule and outcome; no secret, no code"
    passed=$((passed + 1))
else
    printf '  => MISMATCH: %s\n' "${audit_problems[@]}"
    failed=$((failed + 1))
fi

heading "Summary"
if [ "$failed" -eq 0 ]; then
    echo "every scenario and the audit log matched the policy"
else
    echo "the module did not behave as the policy calls for (MISMATCH above)"
fi
echo "demo: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
