#!/usr/bin/env bash
# End-to-end: accounts from a real directory. OpenLDAP's slapd on a free loopback port with
# a throwaway database, nslcd (libnss-ldapd) in front of it, and the built module through the
# real libpam (pamtester under pam_wrapper). NSS answers through libnss_ldap loaded by
# nss_wrapper (NSS_WRAPPER_MODULE_SO_PATH), so /etc/nsswitch.conf is never touched; the users
# and groups exist only in LDAP. nslcd's configuration file and socket have fixed paths:
# /etc/nslcd.conf is saved and restored, and an nslcd that was running is stopped for the
# test and started again after it. Run by tests/e2e/run.sh (as root, under its lock):
#
#   tests/e2e/ldap.sh MODULE CLI
#
# Exit status: 0 passed, 1 failed, 77 skipped (what is missing is said on stdout).
set -euo pipefail

module=${1:?usage: tests/e2e/ldap.sh MODULE CLI}
cli=${2:?usage: tests/e2e/ldap.sh MODULE CLI}

skip_all() {
    echo "ldap: skipped: $*"
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip_all "needs root (nslcd's fixed configuration file and socket)"
for program in slapd slapadd ldapsearch nslcd pamtester oathtool python3; do
    command -v "$program" >/dev/null || [ -x "/usr/sbin/$program" ] ||
        skip_all "$program is not installed"
done
nss_ldap=""
for candidate in /usr/lib/*/libnss_ldap.so.2 /lib/*/libnss_ldap.so.2; do
    [ -f "$candidate" ] && nss_ldap=$candidate && break
done
[ -n "$nss_ldap" ] || skip_all "libnss_ldap.so.2 (libnss-ldapd) is not installed"

started=$SECONDS
nslcd_conf=/etc/nslcd.conf
nslcd_pidfile=/run/nslcd/nslcd.pid
work=""
slapd_pid=""
listener_pid=""
ours_nslcd=0
restart_nslcd=0
made_run_nslcd=0
saved_conf=0

nslcd_running() {
    [ -f "$nslcd_pidfile" ] && kill -0 "$(cat "$nslcd_pidfile")" 2>/dev/null
}

stop_nslcd() {
    local pid
    nslcd_running || return 0
    pid=$(cat "$nslcd_pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

stop_slapd() {
    [ -n "$slapd_pid" ] || return 0
    kill "$slapd_pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$slapd_pid" 2>/dev/null || break
        sleep 0.1
    done
    slapd_pid=""
}

cleanup() {
    local status=$?
    set +e
    [ "$ours_nslcd" -eq 1 ] && stop_nslcd
    stop_slapd
    [ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null && wait "$listener_pid" 2>/dev/null
    if [ "$saved_conf" -eq 1 ]; then
        cp -p "$work/nslcd.conf.saved" "$nslcd_conf"
    fi
    if [ "$made_run_nslcd" -eq 1 ]; then
        rm -rf /run/nslcd
    fi
    if [ "$restart_nslcd" -eq 1 ]; then
        nslcd || echo "ldap: cleanup: could not start the machine's nslcd again" >&2
    fi
    if [ -n "$work" ]; then
        if [ -n "${PAM_MFA_E2E_LOGS:-}" ]; then
            mkdir -p "$PAM_MFA_E2E_LOGS/ldap" && cp -r "$work/logs/." "$PAM_MFA_E2E_LOGS/ldap/"
        fi
        rm -rf -- "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

umask 022
work=$(mktemp -d /tmp/pmfa-ldap.XXXXXX)
mkdir -m 0700 "$work/db" "$work/store" "$work/logs"
mkdir -m 0755 "$work/pam.d"

# ---------------------------------------------------------------------------------------
# Results

failed=0
passed=0
pass() {
    passed=$((passed + 1))
    printf 'ok    %s\n' "$1"
}
fail() {
    failed=$((failed + 1))
    printf 'FAIL  %s\n' "$1"
    shift
    local line
    for line in "$@"; do
        printf '      %s\n' "$line"
    done
}

# ---------------------------------------------------------------------------------------
# The directory: users and groups only in LDAP.
#   lalice   uid 7001, primary gid 7101 (lusers), member of ldapadmins (7100) by memberUid
#   lbob     uid 7002, primary gid 7101 (lusers), in no other group
#   lcarol   uid 7003, primary gid 7999, which no group has
#   first.last@corp.example.com  uid 7004, primary gid 7100 (ldapadmins)
#   ldave    uid 7005, primary gid 7101 (lusers), member of ldapadmins, never enrolled

suffix="dc=pmfa,dc=test"
port=$(python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')
uri="ldap://127.0.0.1:$port/"

cat >"$work/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $work/slapd.pid
database mdb
suffix "$suffix"
rootdn "cn=admin,$suffix"
directory $work/db
maxsize 10485760
EOF

person() { # NAME UID GID
    cat <<EOF
dn: uid=$1,ou=people,$suffix
objectClass: inetOrgPerson
objectClass: posixAccount
cn: $1
sn: $1
uid: $1
uidNumber: $2
gidNumber: $3
homeDirectory: /nonexistent
loginShell: /bin/sh

EOF
}

{
    cat <<EOF
dn: $suffix
objectClass: dcObject
objectClass: organization
o: pam-mfa test
dc: pmfa

dn: ou=people,$suffix
objectClass: organizationalUnit
ou: people

dn: ou=groups,$suffix
objectClass: organizationalUnit
ou: groups

dn: cn=ldapadmins,ou=groups,$suffix
objectClass: posixGroup
cn: ldapadmins
gidNumber: 7100
memberUid: lalice
memberUid: ldave

dn: cn=lusers,ou=groups,$suffix
objectClass: posixGroup
cn: lusers
gidNumber: 7101

EOF
    person lalice 7001 7101
    person lbob 7002 7101
    person lcarol 7003 7999
    person first.last@corp.example.com 7004 7100
    person ldave 7005 7101
} >"$work/data.ldif"

slapadd -q -f "$work/slapd.conf" -l "$work/data.ldif" >"$work/logs/slapadd.log" 2>&1 ||
    { cat "$work/logs/slapadd.log"; exit 1; }

start_slapd() {
    slapd -f "$work/slapd.conf" -h "$uri" >>"$work/logs/slapd.log" 2>&1
    for _ in $(seq 100); do
        if ldapsearch -x -H "$uri" -b "$suffix" -s base >/dev/null 2>&1; then
            slapd_pid=$(cat "$work/slapd.pid")
            return 0
        fi
        sleep 0.1
    done
    echo "ldap: slapd did not start on $uri" >&2
    cat "$work/logs/slapd.log" >&2
    exit 1
}
start_slapd

# ---------------------------------------------------------------------------------------
# nslcd, pointed at it. Short time limits so that an outage is seen in seconds.

if nslcd_running; then
    stop_nslcd
    restart_nslcd=1
fi
if [ -f "$nslcd_conf" ]; then
    cp -p "$nslcd_conf" "$work/nslcd.conf.saved"
    saved_conf=1
fi
cat >"$nslcd_conf" <<EOF
uid nslcd
gid nslcd
uri $uri
base $suffix
bind_timelimit 2
timelimit 2
reconnect_sleeptime 1
reconnect_retrytime 1
EOF
chown root:nslcd "$nslcd_conf" 2>/dev/null || true
chmod 0640 "$nslcd_conf"
if [ ! -d /run/nslcd ]; then
    mkdir -p /run/nslcd
    made_run_nslcd=1
fi
chown nslcd:nslcd /run/nslcd 2>/dev/null || true
ours_nslcd=1
nslcd

# ---------------------------------------------------------------------------------------
# NSS through nss_wrapper: local files with root only, then libnss_ldap.

echo "root:x:0:0:root:/root:/bin/sh" >"$work/passwd"
echo "root:x:0:" >"$work/group"
nss_env=(
    NSS_WRAPPER_PASSWD="$work/passwd"
    NSS_WRAPPER_GROUP="$work/group"
    NSS_WRAPPER_MODULE_SO_PATH="$nss_ldap"
    NSS_WRAPPER_MODULE_FN_PREFIX=ldap
)
in_nss() {
    env LD_PRELOAD=libnss_wrapper.so "${nss_env[@]}" "$@"
}

for _ in $(seq 50); do
    in_nss getent passwd lalice >/dev/null 2>&1 && break
    sleep 0.2
done
if ! in_nss getent passwd lalice >/dev/null; then
    fail "NSS finds lalice in LDAP through nslcd" "$(in_nss getent passwd lalice 2>&1)"
    exit 1
fi
getent passwd lalice >/dev/null 2>&1 &&
    fail "the machine itself does not know lalice (nsswitch.conf untouched)"

# The module, its policy and its audit log.
audit_socket="$work/audit.sock"
audit_log="$work/logs/audit.log"
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

policy="$work/policy.toml"
cat >"$policy" <<EOF
store_dir = "$work/store"
default_mode = "optional"
fail_delay_ms = 0

[[rule]]
name = "admins"
groups = ["ldapadmins"]
mode = "required"

[[rule]]
name = "carol"
users = ["lcarol"]
mode = "required"
EOF
chmod 0600 "$policy"
echo "auth required $module config=$policy log_socket=$audit_socket" >"$work/pam.d/ldap-mfa"

# login USER CODE: pamtester's exit status; the decision's audit line in $decision.
decision=""
login() {
    local before status=0
    before=$(wc -l <"$audit_log")
    printf '%s\n' "$2" |
        in_nss env LD_PRELOAD="libpam_wrapper.so libnss_wrapper.so" PAM_WRAPPER=1 \
            PAM_WRAPPER_SERVICE_DIR="$work/pam.d" PAM_WRAPPER_DEBUGLEVEL=0 \
            pamtester ldap-mfa "$1" authenticate >>"$work/logs/pamtester.log" 2>&1 || status=$?
    sleep 0.2
    decision=$(tail -n +"$((before + 1))" "$audit_log" | tail -n 1)
    return "$status"
}

secret_of() { # a fixed 160-bit secret per account
    printf '%s' "$1" | sha1sum | cut -c1-40 | python3 -c '
import base64, sys
print(base64.b32encode(bytes.fromhex(sys.stdin.read().strip())).decode())'
}
code_of() {
    oathtool --totp -b "$(secret_of "$1")" "${@:2}"
}
enroll() {
    secret_of "$1" | in_nss "$cli" enroll "$1" --config "$policy" --secret-stdin --no-confirm \
        >>"$work/logs/enroll.log" 2>&1
}

# Each step's code once: wait for a fresh 30-second step when less than 8 s are left.
fresh_step() {
    local left=$((30 - $(date +%s) % 30))
    [ "$left" -ge 8 ] || sleep "$left"
}

# ---------------------------------------------------------------------------------------
# The scenarios

for user in lalice lcarol first.last@corp.example.com; do
    if enroll "$user"; then
        pass "enroll $user from LDAP"
    else
        fail "enroll $user from LDAP" "$(tail -n 5 "$work/logs/enroll.log")"
    fi
done

fresh_step
if ! login lalice 000000 && [[ $decision == *"mode=required rule=admins outcome=deny"* ]]; then
    pass "lalice (ldapadmins by memberUid) is asked: a wrong code is refused"
else
    fail "lalice (ldapadmins by memberUid) is asked: a wrong code is refused" "$decision"
fi
if login lalice "$(code_of lalice)" &&
    [[ $decision == *"mode=required rule=admins outcome=success"* ]]; then
    pass "lalice is let in with the right code"
else
    fail "lalice is let in with the right code" "$decision"
fi
if login first.last@corp.example.com "$(code_of first.last@corp.example.com)" &&
    [[ $decision == *"mode=required rule=admins outcome=success"* ]]; then
    pass "first.last@corp.example.com (ldapadmins as primary gid) is asked and let in"
else
    fail "first.last@corp.example.com (ldapadmins as primary gid) is asked and let in" "$decision"
fi
if ! login lcarol 000000 && [[ $decision == *"mode=required rule=carol outcome=deny"* ]] &&
    login lcarol "$(code_of lcarol)" &&
    [[ $decision == *"mode=required rule=carol outcome=success"* ]]; then
    pass "lcarol (primary gid 7999, in no group) is treated by her rule: asked, let in"
else
    fail "lcarol (primary gid 7999, in no group) is treated by her rule: asked, let in" \
        "$decision"
fi
if ! login lbob "" && [[ $decision == *"mode=optional rule=default outcome=ignore"* ]]; then
    pass "lbob (in no policy group, not enrolled) is optional: ignored"
else
    fail "lbob (in no policy group, not enrolled) is optional: ignored" "$decision"
fi

missing=$(in_nss "$cli" status --missing --config "$policy" 2>&1 || true)
if grep -q "^ldave .*rule 'admins' requires a code" <<<"$missing" &&
    ! grep -qE "^(lalice|lbob|lcarol) " <<<"$missing"; then
    pass "status --missing finds ldave (ldapadmins, no secret) and no one else from LDAP"
else
    fail "status --missing finds ldave (ldapadmins, no secret) and no one else from LDAP" \
        "$missing"
fi

# The directory goes away: nslcd cannot answer. A required account must never be let in
# without a code, nor be ignored.
stop_slapd
fresh_step
outage_started=$SECONDS
status=0
login lalice "$(code_of lalice -N 'now + 30 sec')" || status=$?
# nslcd has no cache: NSS answers "not found", and the module refuses after the prompt with
# a reason that names the directory (or, through another NSS provider, an error).
if [ "$status" -ne 0 ] && [[ $decision == *"outcome=error"* || $decision == *"outcome=deny"* ]] &&
    [[ $decision == *"directory did not answer"* || $decision == *"outcome=error"* ]]; then
    pass "slapd stopped: lalice fails closed ($(grep -o 'reason="[^"]*"' <<<"$decision"), $((SECONDS - outage_started)) s)"
else
    fail "slapd stopped: lalice fails closed" "pamtester status $status" "$decision"
fi
status=0
login lalice "" || status=$?
if [ "$status" -ne 0 ] && [[ $decision != *"outcome=ignore"* && $decision != *"outcome=success"* ]]; then
    pass "slapd stopped: lalice without a code is neither let in nor ignored"
else
    fail "slapd stopped: lalice without a code is neither let in nor ignored" \
        "pamtester status $status" "$decision"
fi

start_slapd
for _ in $(seq 50); do
    in_nss getent passwd lalice >/dev/null 2>&1 && break
    sleep 0.2
done
fresh_step
if login lalice "$(code_of lalice -N 'now + 30 sec')" &&
    [[ $decision == *"mode=required rule=admins outcome=success"* ]]; then
    pass "slapd back: lalice is let in again with the right code"
else
    fail "slapd back: lalice is let in again with the right code" "$decision"
fi

printf 'ldap: took %d s\n' $((SECONDS - started))
echo "ldap: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
