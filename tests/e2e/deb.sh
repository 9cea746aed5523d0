#!/usr/bin/env bash
# The .deb, end to end: build it (packaging/build-deb.sh), check its file list, modes and
# control fields, run lintian (no errors), install it with dpkg -i, sign in once through
# the installed module with pamtester, sign in as unprivileged users through the installed
# setuid helper (and its refusals), check the pam-auth-update profile in a private
# mount namespace, lock a terminal with real screen lockers (away, screen) as users in a
# second one (tests/e2e/lockers.sh), then purge and check that nothing is left.
#
# Like run.sh (which calls it), it changes the machine, so it runs only as root with
# CI=true or PAM_MFA_E2E=1. It refuses to run where pam-mfa is installed or its paths
# exist already: purging would take a real store with it. Exit status 77 means skipped.
#
#   PAM_MFA_E2E=1 tests/e2e/deb.sh [--no-build]
set -euo pipefail

build_args=()
case "${1:-}" in
    "") ;;
    --no-build) build_args=(--no-build) ;;
    *)
        echo "usage: tests/e2e/deb.sh [--no-build]" >&2
        exit 2
        ;;
esac

if [ "${CI:-}" != "true" ] && [ "${PAM_MFA_E2E:-}" != "1" ]; then
    echo "deb: skipped: this test installs and purges a package; PAM_MFA_E2E=1 runs it."
    exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "deb: skipped: needs root (dpkg -i)."
    exit 77
fi

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo_root"

die() {
    echo "deb: FAIL: $*" >&2
    exit 1
}
ok() {
    echo "ok    $*"
}

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
module_path="/usr/lib/$multiarch/security/pam_mfa.so"
owned_paths=(/etc/pam-mfa /var/lib/pam-mfa /usr/sbin/pam-mfa "$module_path"
    /usr/share/pam-configs/pam-mfa /usr/share/doc/pam-mfa /usr/libexec/pam-mfa
    /usr/share/lintian/overrides/pam-mfa /usr/bin/pam-mfa-user)

status=$(dpkg-query -W -f='${db:Status-Status}' pam-mfa 2>/dev/null || true)
if [ -n "$status" ] && [ "$status" != "not-installed" ]; then
    echo "deb: skipped: pam-mfa is installed here ($status); this test would purge it."
    exit 77
fi
for path in "${owned_paths[@]}"; do
    if [ -e "$path" ]; then
        echo "deb: skipped: $path exists; this test would overwrite or delete it."
        exit 77
    fi
done

tag="pmfa-deb-$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
user="$tag"
service="$tag"
work=$(mktemp -d "/tmp/$tag.XXXXXX")
installed=0
user_added=0
# Callers without root: an enrolled account and one without a secret.
self_user="${tag}u"
plain_user="${tag}n"
extra_users=()
listener=""
# screen's socket directory for tests/e2e/lockers.sh (outside $work, which is root's 0700).
screens="/tmp/$tag-screens"

cleanup() {
    local status=$?
    set +e
    rm -f "/etc/pam.d/$service" "/etc/pam.d/$service-mfa" "/etc/pam.d/$service-own"
    if [ -n "$listener" ]; then
        kill "$listener" 2>/dev/null
        wait "$listener" 2>/dev/null
        rm -f /dev/log
    fi
    # Screen sessions tests/e2e/lockers.sh left (it quits them itself unless killed).
    for socket in "$screens"/*; do
        [ -S "$socket" ] || continue
        setpriv --reuid="$(stat -c %u "$socket")" --regid="$(stat -c %g "$socket")" \
            --clear-groups -- env -i SCREENDIR="$screens" \
            screen -S "${socket##*/}" -X quit >/dev/null 2>&1
    done
    for name in "${extra_users[@]}"; do
        userdel -f "$name" >/dev/null 2>&1
    done
    rm -rf "$screens"
    if [ "$installed" -eq 1 ]; then
        dpkg --purge pam-mfa >/dev/null 2>&1
        rm -rf /var/lib/pam-mfa
    fi
    if [ "$user_added" -eq 1 ]; then
        userdel -f "$user" >/dev/null 2>&1
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------
# Build, contents, lintian

bash packaging/build-deb.sh "${build_args[@]}"
version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
arch=$(dpkg --print-architecture)
deb="target/debian/pam-mfa_${version}_$arch.deb"
[ -f "$deb" ] || die "build-deb.sh did not make $deb"
ok "build: $deb"

dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }' >"$work/contents"
expect_entry() {
    grep -qxF -e "$1 root/root ./$2" "$work/contents" || die "no '$1 ./$2' in the package"
}
expect_entry -rw-r--r-- "usr/lib/$multiarch/security/pam_mfa.so"
expect_entry -rwxr-xr-x usr/sbin/pam-mfa
expect_entry -rwsr-xr-x usr/libexec/pam-mfa/pam-mfa-check
expect_entry -rw-r--r-- usr/share/lintian/overrides/pam-mfa
expect_entry -rwxr-xr-x usr/bin/pam-mfa-user
expect_entry -rw-r--r-- usr/share/man/man1/pam-mfa-user.1.gz
expect_entry -rw-r--r-- etc/pam-mfa/policy.toml
expect_entry -rw-r--r-- usr/share/pam-configs/pam-mfa
expect_entry -rw-r--r-- usr/share/doc/pam-mfa/copyright
expect_entry -rw-r--r-- usr/share/doc/pam-mfa/changelog.gz
expect_entry -rw-r--r-- usr/share/man/man8/pam_mfa.8.gz
expect_entry -rw-r--r-- usr/share/man/man8/pam-mfa.8.gz
expect_entry -rw-r--r-- usr/share/man/man8/pam-mfa-enroll.8.gz
expect_entry -rw-r--r-- usr/share/man/man5/policy.toml.5.gz
expect_entry -rw-r--r-- usr/share/bash-completion/completions/pam-mfa
expect_entry -rw-r--r-- usr/share/zsh/vendor-completions/_pam-mfa
expect_entry -rw-r--r-- usr/share/fish/vendor_completions.d/pam-mfa.fish
# Everything root's; nothing writable by group or other, nothing setuid but the helper; the
# store is made by postinst, not shipped.
awk '$2 != "root/root" || $1 ~ /^.....w/ || $1 ~ /^........w/ ||
    ($1 ~ /[sS]/ && $3 != "./usr/libexec/pam-mfa/pam-mfa-check")' \
    "$work/contents" >"$work/odd"
[ ! -s "$work/odd" ] || die "odd owners or modes: $(cat "$work/odd")"
! grep -q 'var/lib' "$work/contents" || die "the package ships /var/lib (postinst makes it)"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./etc/pam-mfa/policy.toml | cmp -s - config/policy.toml ||
    die "/etc/pam-mfa/policy.toml is not config/policy.toml"
[ "$(dpkg-deb -I "$deb" conffiles)" = "/etc/pam-mfa/policy.toml" ] ||
    die "conffiles is not exactly /etc/pam-mfa/policy.toml"
depends=$(dpkg-deb -f "$deb" Depends)
for package in libc6 libpam0g libpam-runtime; do
    grep -qE "(^|, )$package( |,|$)" <<<"$depends" || die "Depends lacks $package: $depends"
done
ok "contents: paths, modes, conffile, Depends ($depends)"

lintian_status=0
lintian --fail-on error --display-info --tag-display-limit 0 "$deb" >"$work/lintian" 2>&1 ||
    lintian_status=$?
grep -v -e '^running with root privileges' "$work/lintian" || true
[ "$lintian_status" -eq 0 ] || die "lintian reports errors (exit status $lintian_status)"
ok "lintian: no errors ($(grep -c '^W:' "$work/lintian" || true) warnings)"

# ---------------------------------------------------------------------------------------
# Install

installed=1
dpkg -i "$deb" >"$work/install.log" 2>&1 || die "dpkg -i failed: $(cat "$work/install.log")"
[ "$(stat -c '%U:%G %a %F' /var/lib/pam-mfa)" = "root:root 700 directory" ] ||
    die "/var/lib/pam-mfa is $(stat -c '%U:%G %a %F' /var/lib/pam-mfa)"
[ "$(stat -c '%U:%G %a' "$module_path")" = "root:root 644" ] || die "module mode"
[ "$(stat -c '%U:%G %a' /usr/libexec/pam-mfa/pam-mfa-check)" = "root:root 4755" ] ||
    die "helper mode: $(stat -c '%U:%G %a' /usr/libexec/pam-mfa/pam-mfa-check)"
! grep -rq pam_mfa /etc/pam.d/common-* || die "installing enabled the module in common-*"
/usr/sbin/pam-mfa --version | grep -qx "pam-mfa $version" || die "pam-mfa --version"
/usr/sbin/pam-mfa policy check >/dev/null || die "pam-mfa policy check fails on the shipped policy"
grep -q "^  1. pam-mfa enroll root" "$work/install.log" &&
    grep -q "pam-auth-update --enable pam-mfa" "$work/install.log" ||
    die "postinst did not print the next steps: $(cat "$work/install.log")"
ok "dpkg -i: store root 0700, common-auth untouched, policy checks, next steps printed"

# A test account, enrolled in the installed store with the installed command; the stack
# names the module by its bare name and uses the default policy, as an admin's would.
useradd -M -d /nonexistent -s /usr/sbin/nologin "$user"
user_added=1
password="pw-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
printf '%s:%s\n' "$user" "$password" | chpasswd
secret=$(head -c 20 /dev/urandom | base32)
printf '%s\n' "$secret" | /usr/sbin/pam-mfa enroll "$user" --secret-stdin --no-confirm \
    >/dev/null 2>&1 || die "pam-mfa enroll failed"
cat >"/etc/pam.d/$service" <<PAM
# pam-mfa .deb test ($tag): removed when the test ends.
auth     required   pam_unix.so
auth     required   pam_mfa.so
account  required   pam_permit.so
PAM

step=$(($(date +%s) / 30))
code=$(oathtool --totp -b "$secret" -N "@$((step * 30))")
printf '%s\n%s\n' "$password" "$code" | pamtester "$service" "$user" authenticate \
    >"$work/pamtester.log" 2>&1 || die "pamtester with the right code: $(cat "$work/pamtester.log")"
printf '%s\n%s\n' "$password" "$code" | pamtester "$service" "$user" authenticate \
    >"$work/pamtester.log" 2>&1 && die "pamtester with a replayed code succeeded"
ok "pamtester through the installed module: right code in, replayed code out"

# ---------------------------------------------------------------------------------------
# Callers without root, through the installed setuid helper: pamtester run as the account
# itself, as a screen locker runs, under the shipped (default) policy. The helper writes its
# audit lines to /dev/log: on a host without a syslog daemon, the test listens there.

audit_log="$work/audit.log"
: >"$audit_log"
if [ ! -e /dev/log ]; then
    python3 -c '
import socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as log:
    while True:
        log.write(sock.recv(65536).rstrip(b"\n") + b"\n")
' /dev/log "$audit_log" &
    listener=$!
    for _ in $(seq 50); do
        [ -S /dev/log ] && break
        sleep 0.1
    done
    [ -S /dev/log ] || die "the /dev/log listener did not start"
fi
# expect_audit TEXT: an audit line holding TEXT arrived (checked only where the test
# listens on /dev/log itself).
expect_audit() {
    [ -n "$listener" ] || return 0
    for _ in $(seq 20); do
        grep -qF -- "$1" "$audit_log" && return 0
        sleep 0.1
    done
    die "no audit line with '$1': $(cat "$audit_log")"
}

# Three wrong codes lock, and failures are not slowed down, for this test.
sed -i '1i max_failures = 3\nfail_delay_ms = 0' /etc/pam-mfa/policy.toml
/usr/sbin/pam-mfa policy check >/dev/null || die "policy check after setting the limits"
for name in "$self_user" "$plain_user"; do
    useradd -M -d /nonexistent -s /usr/sbin/nologin "$name"
    extra_users+=("$name")
    printf '%s:%s\n' "$name" "$password" | chpasswd
done
self_uid=$(id -u "$self_user")
self_secret=$(head -c 20 /dev/urandom | base32)
printf '%s\n' "$self_secret" | /usr/sbin/pam-mfa enroll "$self_user" --secret-stdin \
    --no-confirm >/dev/null 2>&1 || die "pam-mfa enroll $self_user failed"
self_code() {
    oathtool --totp -b "$self_secret" -N "@$(($1 * 30))"
}
# Paths the caller owns, named where a careless setuid program would look (TZ, HOME, a
# policy of its own): the helper must never read them.
trap_dir="$work/trap"
install -d -o "$self_user" -m 0755 "$trap_dir"
printf 'store_dir = "%s"\ndefault_mode = "exempt"\n' "$trap_dir" >"$trap_dir/policy.toml"
cp /usr/share/zoneinfo/UTC "$trap_dir/zone"
chown "$self_user" "$trap_dir/policy.toml" "$trap_dir/zone"
caller_env=(env -i PATH=/usr/sbin:/usr/bin:/bin HOME="$trap_dir" TZ="$trap_dir/zone" LANG=C)
# as WHO CMD...: CMD with WHO's uid, gid and groups, and the trap environment.
as() {
    local who=$1
    shift
    setpriv --reuid="$who" --regid="$who" --init-groups -- "${caller_env[@]}" "$@"
}
cat >"/etc/pam.d/$service-mfa" <<PAM
# pam-mfa .deb test ($tag): removed when the test ends.
auth     required   pam_mfa.so
account  required   pam_permit.so
PAM
cat >"/etc/pam.d/$service-own" <<PAM
# pam-mfa .deb test ($tag): removed when the test ends.
auth     required   pam_mfa.so config=$trap_dir/policy.toml
account  required   pam_permit.so
PAM

# The right code, as the user itself, traced: every path the helper opens or looks at.
now=$(($(date +%s) / 30))
code=$(self_code "$now")
printf '%s\n%s\n' "$password" "$code" |
    strace -f -qq -e trace=%file -o "$work/strace" -u "$self_user" "${caller_env[@]}" \
        pamtester "$service" "$self_user" authenticate >"$work/self.log" 2>&1 ||
    die "as $self_user, the right code: $(cat "$work/self.log")"
expect_audit "user=$self_user rhost=- mode=optional rule=default outcome=success"
helper_pid=$(awk '/execve\("\/usr\/libexec\/pam-mfa\/pam-mfa-check"/ { print $1; exit }' \
    "$work/strace")
[ -n "$helper_pid" ] || die "the module ran no helper: $(grep execve "$work/strace")"
awk -v pid="$helper_pid" '$1 == pid' "$work/strace" | grep -oE '"/[^"]*"' | tr -d '"' |
    sort -u >"$work/helper-paths"
grep -qx /etc/pam-mfa/policy.toml "$work/helper-paths" ||
    die "the helper did not read the default policy: $(cat "$work/helper-paths")"
! grep -qF "$trap_dir" "$work/helper-paths" ||
    die "the helper read a path of the caller's: $(grep -F "$trap_dir" "$work/helper-paths")"
while read -r path; do
    case "$path" in /proc/* | /dev/*) continue ;; esac
    [ -e "$path" ] || continue
    owners="$(stat -c %u "$path") $(stat -c %u "$(dirname "$path")")"
    [ "$owners" = "0 0" ] || die "the helper read $path (owner, directory owner: $owners)"
done <"$work/helper-paths"
ok "as $self_user: right code in through the helper, which read only root's paths"

printf '%s\n%s\n' "$password" "$code" | as "$self_user" \
    pamtester "$service" "$self_user" authenticate >"$work/self.log" 2>&1 &&
    die "as $self_user, a replayed code succeeded"
expect_audit 'reason="code already used"'
wrong=000000
while [ "$wrong" = "$(self_code $((now - 1)))" ] || [ "$wrong" = "$(self_code "$now")" ] ||
    [ "$wrong" = "$(self_code $((now + 1)))" ] || [ "$wrong" = "$(self_code $((now + 2)))" ]; do
    wrong=$(printf '%06d' $((10#$wrong + 1)))
done
printf '%s\n%s\n' "$password" "$wrong" | as "$self_user" \
    pamtester "$service" "$self_user" authenticate >"$work/self.log" 2>&1 &&
    die "as $self_user, a wrong code succeeded"
# Read whole before grep: grep -q stops at the match, and under pipefail the writer's
# broken pipe would fail the check.
counted=$(/usr/sbin/pam-mfa status --json "$self_user")
grep -q '"failures": 2' <<<"$counted" ||
    die "the replayed and the wrong code were not counted: $counted"
printf '%s\n%s\n' "$password" "$wrong" | as "$self_user" \
    pamtester "$service" "$self_user" authenticate >"$work/self.log" 2>&1 &&
    die "as $self_user, a wrong code succeeded"
printf '%s\n%s\n' "$password" "$(self_code $((now + 1)))" | as "$self_user" \
    pamtester "$service" "$self_user" authenticate >"$work/self.log" 2>&1 &&
    die "as $self_user, a locked account got in"
grep -q "is locked until" "$work/self.log" || die "no lock message: $(cat "$work/self.log")"
ok "as $self_user: replayed and wrong codes refused and counted, then locked"

as "$self_user" pamtester "$service-mfa" "$user" authenticate </dev/null \
    >"$work/other.log" 2>&1 && die "as $self_user, another account's check succeeded"
grep -q "Verification code" "$work/other.log" &&
    die "the helper prompted for another account: $(cat "$work/other.log")"
expect_audit "helper refused: uid $self_uid asked about account '$user', not its own"
as "$self_user" pamtester "$service-own" "$self_user" authenticate </dev/null \
    >"$work/own.log" 2>&1 && die "as $self_user, a policy of the user's own was accepted"
expect_audit "helper refused: uid $self_uid named the policy '$trap_dir/policy.toml'"
ok "as $self_user: another account, and a policy of the user's own, refused with audit lines"

# Self-service as the user: status, then new recovery codes for a current code.
/usr/sbin/pam-mfa unlock "$self_user" -y >/dev/null || die "pam-mfa unlock $self_user"
as "$self_user" pam-mfa-user status >"$work/me.log" 2>&1 ||
    die "as $self_user, pam-mfa-user status: $(cat "$work/me.log")"
grep -q "^account: $self_user$" "$work/me.log" && grep -q "^kind: totp SHA1" "$work/me.log" ||
    die "pam-mfa-user status: $(cat "$work/me.log")"
self_code $((now + 1)) | as "$self_user" pam-mfa-user recovery >"$work/me.log" 2>&1 ||
    die "as $self_user, pam-mfa-user recovery: $(cat "$work/me.log")"
[ "$(grep -cE '^  [a-z2-7]{5}-[a-z2-7]{5}$' "$work/me.log")" = 10 ] ||
    die "pam-mfa-user recovery showed no codes: $(cat "$work/me.log")"
expect_audit "user=$self_user rhost=- mode=unknown rule=- outcome=success reason=\"self-service: 10 new recovery codes"
as "$self_user" pam-mfa-user --config "$trap_dir/policy.toml" status >"$work/me.log" 2>&1 &&
    die "as $self_user, pam-mfa-user with a policy of the user's own succeeded"
ok "as $self_user: pam-mfa-user status and recovery through the helper; its own policy refused"
# A uid that no account has: refused, and the refusal leaves an audit line.
stranger=60000
while getent passwd "$stranger" >/dev/null; do
    stranger=$((stranger + 1))
done
setpriv --reuid="$stranger" --regid="$stranger" --clear-groups -- "${caller_env[@]}" \
    pam-mfa-user status >"$work/me.log" 2>&1 &&
    die "pam-mfa-user as uid $stranger (no account) succeeded"
grep -q "not known to this host" "$work/me.log" ||
    die "pam-mfa-user as uid $stranger: $(cat "$work/me.log")"
expect_audit "service=pam-mfa-user user=- rhost=- mode=unknown rule=- outcome=error reason=\"helper refused: uid $stranger: no account has this uid\""
ok "as uid $stranger (no account): pam-mfa-user refused, with an audit line"

printf '%s\n' "$password" | as "$plain_user" \
    pamtester "$service" "$plain_user" authenticate >"$work/plain.log" 2>&1 ||
    die "as $plain_user (optional, no secret): $(cat "$work/plain.log")"
grep -q "Verification code" "$work/plain.log" && die "asked $plain_user for a code"
expect_audit "user=$plain_user rhost=- mode=optional rule=default outcome=ignore"
ok "as $plain_user: optional without a secret, the password alone"

# The pam-auth-update profile, enabled for real but in a private mount namespace over
# copies of /etc/pam.d and /var/lib/pam: a stack that includes common-auth then asks the
# code after the password, and --remove (what prerm runs) takes it out again.
if unshare --mount --propagation private true 2>/dev/null; then
    cp -a /etc/pam.d "$work/pam.d"
    cp -a /var/lib/pam "$work/var-lib-pam"
    printf '@include common-auth\naccount required pam_permit.so\n' >"$work/pam.d/$service-common"
    printf '@include common-auth\nauth required pam_mfa.so\n' >"$work/pam.d/$service-twice"
    # policy check warns about root only while root has no secret in the installed store.
    root_warning=0
    [ -e /var/lib/pam-mfa/root.toml ] || root_warning=1
    code=$(oathtool --totp -b "$secret" -N "@$(((step + 1) * 30))")
    unshare --mount --propagation private -- env DEBIAN_FRONTEND=noninteractive \
        PASSWORD="$password" CODE="$code" SERVICE="$service-common" USER_NAME="$user" \
        TWICE="$service-twice" ROOT_WARNING="$root_warning" /bin/sh -c '
        set -e
        mount --bind "$1" /etc/pam.d
        mount --bind "$2" /var/lib/pam
        pam-auth-update --enable pam-mfa
        grep -E "^auth[[:space:]]+required[[:space:]]+pam_mfa\.so" /etc/pam.d/common-auth
        pam-mfa policy check >"$3"
        grep "^/etc/pam.d/$TWICE:2: warning: pam_mfa.so is stacked 2 times" "$3" |
            grep -q "(common-auth:[0-9]*, $TWICE:2)"
        ! grep -q "stacked 2 times for service $SERVICE " "$3"
        if [ "$ROOT_WARNING" = 1 ]; then
            grep -q "^/etc/pam.d/common-auth:[0-9]*: warning: .*root has no secret" "$3"
        fi
        printf "%s\n%s\n" "$PASSWORD" "$CODE" | pamtester "$SERVICE" "$USER_NAME" authenticate
        pam-auth-update --package --remove pam-mfa
        ! grep -q pam_mfa /etc/pam.d/common-auth
    ' sh "$work/pam.d" "$work/var-lib-pam" "$work/check.out" >"$work/profile.log" 2>&1 ||
        die "pam-auth-update profile: $(cat "$work/profile.log") $(cat "$work/check.out")"
    ! grep -rq pam_mfa /etc/pam.d/common-* || die "the namespace leaked into /etc/pam.d"
    ok "pam-auth-update profile: enabled, policy check warnings, password then code, removed (in a namespace)"
else
    echo "skip  pam-auth-update profile: no private mount namespace here"
fi

# Real screen lockers from Debian (away, and GNU screen's builtin lock), as the users
# themselves, with the profile enabled in a second private namespace: tests/e2e/lockers.sh
# says which lockers and why (and why not vlock).
if unshare --mount --propagation private true 2>/dev/null; then
    lock_user="${tag}l"
    useradd -M -d /nonexistent -s /bin/sh "$lock_user"
    extra_users+=("$lock_user")
    printf '%s:%s\n' "$lock_user" "$password" | chpasswd
    lock_secret=$(head -c 20 /dev/urandom | base32)
    printf '%s\n' "$lock_secret" | /usr/sbin/pam-mfa enroll "$lock_user" --secret-stdin \
        --no-confirm >/dev/null 2>&1 || die "pam-mfa enroll $lock_user failed"
    install -d -o "$lock_user" -m 0700 "$screens"
    cp -a /etc/pam.d "$work/pam.d-lockers"
    cp -a /var/lib/pam "$work/var-lib-pam-lockers"
    listening=0
    [ -z "$listener" ] || listening=1
    lockers_status=0
    unshare --mount --propagation private -- env DEBIAN_FRONTEND=noninteractive \
        WORK="$work" E2E_DIR="$repo_root/tests/e2e" PAM_D="$work/pam.d-lockers" \
        VAR_LIB_PAM="$work/var-lib-pam-lockers" LOCK_USER="$lock_user" \
        LOCK_SECRET="$lock_secret" PLAIN_USER="$plain_user" PASSWORD="$password" \
        AUDIT_LOG="$audit_log" LISTENING="$listening" TRAP_DIR="$trap_dir" \
        SCREENS="$screens" bash "$repo_root/tests/e2e/lockers.sh" >"$work/lockers.out" 2>&1 || lockers_status=$?
    grep '^ok ' "$work/lockers.out" || true
    [ "$lockers_status" -eq 0 ] || die "screen lockers (status $lockers_status): $(cat "$work/lockers.out")"
    ! grep -rq pam_mfa /etc/pam.d/common-* || die "the lockers' namespace leaked into /etc/pam.d"
    [ ! -e /etc/pam.d/screen ] || die "the lockers' namespace leaked /etc/pam.d/screen"
    # Nothing of the lockers' left running (zombies are dead already: a container's init
    # may not reap them).
    for name in "$lock_user" "$plain_user"; do
        left=$(ps -u "$name" -o stat=,pid=,args= | awk '$1 !~ /^Z/') || true
        [ -z "$left" ] || die "processes of $name left: $left"
    done
else
    echo "skip  screen lockers: no private mount namespace here"
fi

# ---------------------------------------------------------------------------------------
# Purge: the store with a secret in it is kept (and said so); everything else goes.

dpkg --purge pam-mfa >"$work/purge.log" 2>&1 || die "dpkg --purge failed: $(cat "$work/purge.log")"
grep -q "still name pam_mfa.so" "$work/purge.log" ||
    die "prerm did not warn about /etc/pam.d/$service: $(cat "$work/purge.log")"
grep -q "kept /var/lib/pam-mfa" "$work/purge.log" ||
    die "postrm did not say it kept the store: $(cat "$work/purge.log")"
[ -f "/var/lib/pam-mfa/$user.toml" ] || die "purge deleted a store that holds secrets"
rm -rf /var/lib/pam-mfa
installed=0
for path in "${owned_paths[@]}"; do
    [ ! -e "$path" ] || die "$path is left after purge"
done
[ -z "$(dpkg-query -W -f='${db:Status-Status}' pam-mfa 2>/dev/null)" ] ||
    [ "$(dpkg-query -W -f='${db:Status-Status}' pam-mfa)" = "not-installed" ] ||
    die "dpkg still knows pam-mfa after purge"
ok "purge with secrets: warned about the stack, kept the store, removed the rest"

# Again, with an empty store: purge removes everything.
rm -f "/etc/pam.d/$service" "/etc/pam.d/$service-mfa" "/etc/pam.d/$service-own"
installed=1
dpkg -i "$deb" >"$work/install.log" 2>&1 || die "dpkg -i (again) failed"
dpkg --purge pam-mfa >"$work/purge.log" 2>&1 || die "dpkg --purge (again) failed"
installed=0
for path in "${owned_paths[@]}"; do
    [ ! -e "$path" ] || die "$path is left after purge"
done
! grep -q "WARNING" "$work/purge.log" || die "prerm warned with no stack naming the module"
ok "purge with an empty store: nothing left"
