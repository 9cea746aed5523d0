#!/usr/bin/env bash
# The .deb, end to end: build it (packaging/build-deb.sh), check its file list, modes and
# control fields, run lintian (no errors), install it with dpkg -i, sign in once through
# the installed module with pamtester, check the pam-auth-update profile in a private
# mount namespace, then purge and check that nothing is left.
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
    /usr/share/pam-configs/pam-mfa /usr/share/doc/pam-mfa)

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

cleanup() {
    local status=$?
    set +e
    rm -f "/etc/pam.d/$service"
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
# Everything root's; nothing writable by group or other, nothing setuid; the store is made
# by postinst, not shipped.
awk '$2 != "root/root" || $1 ~ /^.....w/ || $1 ~ /^........w/ || $1 ~ /[sS]/' \
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
rm -f "/etc/pam.d/$service"
installed=1
dpkg -i "$deb" >"$work/install.log" 2>&1 || die "dpkg -i (again) failed"
dpkg --purge pam-mfa >"$work/purge.log" 2>&1 || die "dpkg --purge (again) failed"
installed=0
for path in "${owned_paths[@]}"; do
    [ ! -e "$path" ] || die "$path is left after purge"
done
! grep -q "WARNING" "$work/purge.log" || die "prerm warned with no stack naming the module"
ok "purge with an empty store: nothing left"
