#!/usr/bin/env bash
# Real screen lockers from Debian, run as the user, through the installed module and its
# setuid helper, under the shipped policy with the package's pam-auth-update profile
# enabled. deb.sh runs this in a private mount namespace (unshare --mount): it binds copies
# of /etc/pam.d and /var/lib/pam over the real ones, so enabling the profile and writing
# /etc/pam.d/screen touch only the copies.
#
# - away(1) (package away): not setuid; it runs PAM as the user itself, service `away`
#   (Debian's /etc/pam.d/away includes common-auth), and shows each prompt in turn, so the
#   password and then the code are asked. A failed answer leaves it locked.
# - GNU screen's builtin lock (C-a x, LOCKPRG unset): not setuid; PAM as the user, service
#   `screen` (no /etc/pam.d/screen on Debian: libpam's `other`, which includes common-auth).
#   It asks one "Password:" and answers every echo-off prompt with it, as i3lock and
#   swaylock do: under common-auth an enrolled account can never pass (the password is not
#   its code). Its own file with `combined` (password with the code at its end) works.
# - vlock is not used: /usr/sbin/vlock-main is setuid root and runs PAM with effective uid
#   0, so the module reads the store itself and the helper is never run.
#
# Environment (from deb.sh): WORK, E2E_DIR, PAM_D, VAR_LIB_PAM (the copies), LOCK_USER
# (enrolled, optional), LOCK_SECRET, PLAIN_USER (optional, no secret), PASSWORD (both
# users'), AUDIT_LOG, LISTENING (1 when deb.sh itself listens on /dev/log), TRAP_DIR,
# SCREENS (LOCK_USER's directory for screen's sockets).
set -euo pipefail

die() {
    echo "lockers: FAIL: $*" >&2
    [ "$LISTENING" = 1 ] && echo "last audit lines: $(tail -n 5 "$AUDIT_LOG")" >&2
    exit 1
}
ok() {
    echo "ok    $*"
}
expect_audit() {
    [ "$LISTENING" = 1 ] || return 0
    for _ in $(seq 20); do
        grep -qF -- "$1" "$AUDIT_LOG" && return 0
        sleep 0.1
    done
    die "no audit line with '$1': $(cat "$AUDIT_LOG")"
}
caller_env=(env -i PATH=/usr/sbin:/usr/bin:/bin HOME="$TRAP_DIR" TZ="$TRAP_DIR/zone" LANG=C)
# as WHO CMD...: CMD with WHO's uid, gid and groups, in the environment deb.sh's `as` gives.
as() {
    local who=$1
    shift
    setpriv --reuid="$who" --regid="$who" --init-groups -- "${caller_env[@]}" "$@"
}
# The same as argument lists, for expect to spawn.
as_lock=(setpriv --reuid="$LOCK_USER" --regid="$LOCK_USER" --init-groups -- "${caller_env[@]}")
as_plain=(setpriv --reuid="$PLAIN_USER" --regid="$PLAIN_USER" --init-groups -- "${caller_env[@]}")
# locker KIND ANSWERS... -- COMMAND...: locker.exp's exit status, its output in $WORK/locker.log.
locker() {
    local status=0
    timeout 120 expect -f "$E2E_DIR/locker.exp" "$@" >"$WORK/locker.log" 2>&1 || status=$?
    return "$status"
}
# fresh_code: $code becomes the code of the next unused time step (now's, or the next
# one's when now's is used up). Not in a subshell: it notes the step it used.
last_step=0
fresh_code() {
    local step=$(($(date +%s) / 30))
    [ "$step" -gt "$last_step" ] || step=$((last_step + 1))
    last_step=$step
    code=$(oathtool --totp -b "$LOCK_SECRET" -N "@$((step * 30))")
}
# A code of no step within two of now.
wrong_code() {
    local near wrong=000000
    near=$(oathtool --totp -b -w 4 -N "@$(($(date +%s) - 60))" "$LOCK_SECRET")
    while grep -qx "$wrong" <<<"$near"; do
        wrong=$(printf '%06d' $(((10#$wrong + 111111) % 1000000)))
    done
    echo "$wrong"
}
screens="$SCREENS"
# Each screen session by name, so that each is quit (cleanup) by name.
sessions=0
cleanup() {
    local status=$?
    set +e
    for socket in "$screens"/*; do
        [ -S "$socket" ] && as "$LOCK_USER" env SCREENDIR="$screens" \
            screen -S "${socket##*/}" -X quit >/dev/null 2>&1
    done
    exit "$status"
}
trap cleanup EXIT

mount --bind "$PAM_D" /etc/pam.d
mount --bind "$VAR_LIB_PAM" /var/lib/pam
DEBIAN_FRONTEND=noninteractive pam-auth-update --enable pam-mfa
grep -qE '^auth[[:space:]]+required[[:space:]]+pam_mfa\.so' /etc/pam.d/common-auth ||
    die "pam-auth-update did not enable the profile: $(cat /etc/pam.d/common-auth)"
grep -q '^@include common-auth' /etc/pam.d/away || die "/etc/pam.d/away: $(cat /etc/pam.d/away)"
[ ! -e /etc/pam.d/screen ] || die "/etc/pam.d/screen exists: this test expects libpam's other"
/usr/sbin/pam-mfa unlock "$LOCK_USER" -y >/dev/null

# away, an enrolled (optional) account: the password, then the code. Traced: the module in
# away (as the user) runs the helper, which decides.
fresh_code
locker away "password=$PASSWORD" "code=$code" -- \
    strace -f -qq -e trace=execve -o "$WORK/away.strace" -u "$LOCK_USER" "${caller_env[@]}" \
    away -F -C "pam-mfa e2e" || die "away, the right code: $(cat "$WORK/locker.log")"
grep -q 'execve("/usr/libexec/pam-mfa/pam-mfa-check"' "$WORK/away.strace" ||
    die "away ran no helper: $(grep execve "$WORK/away.strace")"
expect_audit "service=away user=$LOCK_USER rhost=- mode=optional rule=default outcome=success"
ok "away as $LOCK_USER: password, then the code, back online through the helper"

status=0
locker away "password=$PASSWORD" "code=$code" -- "${as_lock[@]}" away -F -C "pam-mfa e2e" ||
    status=$?
[ "$status" -eq 1 ] || die "away, a replayed code: status $status: $(cat "$WORK/locker.log")"
expect_audit "service=away user=$LOCK_USER rhost=- mode=optional rule=default outcome=deny reason=\"code already used\""
status=0
locker away "password=$PASSWORD" "code=$(wrong_code)" -- "${as_lock[@]}" away -F -C "pam-mfa e2e" ||
    status=$?
[ "$status" -eq 1 ] || die "away, a wrong code: status $status: $(cat "$WORK/locker.log")"
counted=$(/usr/sbin/pam-mfa status --json "$LOCK_USER")
grep -q '"failures": 2' <<<"$counted" || die "away's replayed and wrong codes not counted: $counted"
ok "away as $LOCK_USER: a replayed and a wrong code leave it locked, and count"
/usr/sbin/pam-mfa unlock "$LOCK_USER" -y >/dev/null

locker away "password=$PASSWORD" -- "${as_plain[@]}" away -F -C "pam-mfa e2e" ||
    die "away as $PLAIN_USER (optional, no secret): $(cat "$WORK/locker.log")"
! grep -q "Verification code" "$WORK/locker.log" || die "away asked $PLAIN_USER for a code"
expect_audit "service=away user=$PLAIN_USER rhost=- mode=optional rule=default outcome=ignore"
ok "away as $PLAIN_USER (optional, no secret): the password alone, no code asked"

# screen under common-auth (libpam's other): its one string answers the code prompt too.
# screen_lock TEXT: locker.exp's status for a lock of a new screen session, typing TEXT.
screen_lock() {
    sessions=$((sessions + 1))
    local name="s$sessions" status=0
    locker screen "$1" -- "${as_lock[@]}" env TERM=vt100 SHELL=/bin/sh SCREENDIR="$screens" \
        screen -q -S "$name" /bin/sh || status=$?
    as "$LOCK_USER" env SCREENDIR="$screens" screen -S "$name" -X quit >/dev/null 2>&1 || true
    return "$status"
}
status=0
screen_lock "$PASSWORD" || status=$?
[ "$status" -eq 1 ] || die "screen under common-auth, the password: status $status: $(cat "$WORK/locker.log")"
expect_audit "service=screen user=$LOCK_USER rhost=- mode=optional rule=default outcome=deny"
ok "screen as $LOCK_USER under common-auth: the password alone (also sent as the code) stays locked"
/usr/sbin/pam-mfa unlock "$LOCK_USER" -y >/dev/null

# screen with a file of its own: the password with the code at its end, as README says.
cat >/etc/pam.d/screen <<'PAM'
auth     requisite  pam_mfa.so combined
auth     required   pam_unix.so use_first_pass
@include common-account
PAM
fresh_code
screen_lock "$PASSWORD$code" ||
    die "screen, combined, password and code: $(cat "$WORK/locker.log")"
expect_audit "service=screen user=$LOCK_USER rhost=- mode=optional rule=default outcome=success"
status=0
screen_lock "$PASSWORD" || status=$?
[ "$status" -eq 1 ] || die "screen, combined, the password alone: status $status: $(cat "$WORK/locker.log")"
status=0
screen_lock "$PASSWORD$(wrong_code)" || status=$?
[ "$status" -eq 1 ] || die "screen, combined, a wrong code: status $status: $(cat "$WORK/locker.log")"
ok "screen as $LOCK_USER with combined: password and code unlock; the password alone or a wrong code do not"

pam-auth-update --package --remove pam-mfa
