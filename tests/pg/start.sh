#!/usr/bin/env bash
# Starts a private PostgreSQL for the tests: a throwaway cluster in DIR, TLS only, client
# certificates from a CA made here, listening on a free port of 127.0.0.1. Nothing outside
# DIR changes; no system service is used.
#
#   tests/pg/start.sh DIR [--owner-pid PID] [--durable]   start; writes DIR/env (shell)
#   tests/pg/start.sh --stop DIR                          stop and remove DIR
#
# With --owner-pid the cluster stops itself (and DIR goes) once process PID has exited, so a
# test that dies leaves nothing running. The tests' cluster does not flush (fsync=off);
# --durable keeps PostgreSQL's defaults (fsync, synchronous_commit), as a benchmark needs.
# Every connection is logged in DIR/server/server.log (the tests count a login's).
# DIR/env sets:
#   PAM_MFA_PG_DIR PAM_MFA_PG_PORT PAM_MFA_PG_SOCKET PAM_MFA_PG_BIN
#   PAM_MFA_PG_CA            the CA that signed the server and client certificates
#   PAM_MFA_PG_OTHER_CA      another CA (signs nothing this server trusts or shows)
#   PAM_MFA_PG_MODULE_CERT / _KEY   client certificate of role pam_mfa_module
#   PAM_MFA_PG_ADMIN_CERT / _KEY    client certificate of role pam_mfa_admin
#   PAM_MFA_PG_OTHER_CERT / _KEY    a pam_mfa_module certificate from the other CA
# The server certificate names localhost and 127.0.0.1. The roles and the database
# pam_mfa are made by docs/fleet-roles.sql, the same file the docs give admins.
# Run as root, the cluster runs as the postgres user (initdb refuses root).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

die() {
    echo "tests/pg/start.sh: $*" >&2
    exit 1
}

pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] || die "no PostgreSQL server found in /usr/lib/postgresql (scripts/deps.sh installs Debian's postgresql)"
    echo "$dir"
}

# Runs a command as the cluster's owner: postgres when we are root, else ourselves.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [ "${1:-}" = "--stop" ]; then
    dir=${2:?usage: start.sh --stop DIR}
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    exit 0
fi

dir=${1:?usage: start.sh DIR [--owner-pid PID] [--durable]}
shift
owner_pid=
fsync=off
while [ "$#" -gt 0 ]; do
    case "$1" in
        --owner-pid)
            owner_pid=${2:?--owner-pid needs a PID}
            shift
            ;;
        --durable) fsync=on ;;
        *) die "unknown argument: $1" ;;
    esac
    shift
done
bin=$(pg_bin)
command -v openssl >/dev/null || die "openssl not found (scripts/deps.sh installs it)"

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# The postgres user must be able to enter DIR and its parent (mktemp -d makes 0700 ones):
# both get o+x when they are ours, else the caller must see to it.
for d in "$(dirname "$dir")" "$dir"; do
    [ "$(stat -c %u "$d")" = "$(id -u)" ] && chmod o+x "$d"
done
mkdir -m 700 "$dir/tls" "$dir/data" "$dir/sock" "$dir/server"

# Certificates: a CA, the server's (localhost, 127.0.0.1), one client per role, and a
# second CA with a client of its own for the refusals.
(
    cd "$dir/tls"
    umask 077
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 \
        -subj "/CN=pam-mfa test CA" 2>/dev/null
    openssl req -x509 "${ec[@]}" -keyout other-ca.key -out other-ca.pem -days 2 \
        -subj "/CN=another CA" 2>/dev/null
    sign() { # NAME CN CA [EXTFILE]
        openssl req "${ec[@]}" -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
        openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial \
            -days 2 -out "$1.pem" ${4:+-extfile "$4"} 2>/dev/null
        rm -f "$1.csr"
    }
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    sign server localhost ca server.ext
    sign module pam_mfa_module ca client.ext
    sign admin pam_mfa_admin ca client.ext
    sign other pam_mfa_module other-ca client.ext
)
cp "$dir/tls/server.pem" "$dir/tls/server.key" "$dir/tls/ca.pem" "$dir/server/"
if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres: "$dir/data" "$dir/sock" "$dir/server"
fi

as_owner "$bin/initdb" -D "$dir/data" -A reject -U postgres --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; die "initdb failed"; }
# TLS with a client certificate for every network login; the superuser only over the
# socket, as the cluster's owner.
cat >"$dir/data/pg_hba.conf" <<HBA
local   all        postgres                    peer
local   all        all                         reject
hostssl all        pam_mfa_password 127.0.0.1/32 scram-sha-256
hostssl all        all            127.0.0.1/32 cert
HBA
if [ "$(id -u)" -ne 0 ]; then
    sed -i "s/^local   all        postgres                    peer/local   all        postgres                    trust/" "$dir/data/pg_hba.conf"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_owner "$bin/pg_ctl" -D "$dir/data" -w -t 30 -l "$dir/server/server.log" -o "-p $port -k $dir/sock \
    -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=$dir/server/server.pem \
    -c ssl_key_file=$dir/server/server.key -c ssl_ca_file=$dir/server/ca.pem \
    -c fsync=$fsync -c log_connections=on -c max_connections=100 -c shared_buffers=16MB" start >/dev/null ||
    { cat "$dir/server/server.log" >&2; die "the server did not start"; }

psql_super=(as_owner "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" -U postgres)
"${psql_super[@]}" -d postgres -f - <"$repo_root/docs/fleet-roles.sql" >/dev/null
# A role that logs in with a password instead of a certificate, for password_file.
"${psql_super[@]}" -d postgres -c "CREATE ROLE pam_mfa_password LOGIN PASSWORD 'test-password' IN ROLE pam_mfa_module" >/dev/null
"${psql_super[@]}" -d postgres -c "GRANT CONNECT ON DATABASE pam_mfa TO pam_mfa_password" >/dev/null

cat >"$dir/env" <<ENV
export PAM_MFA_PG_DIR=$dir
export PAM_MFA_PG_PORT=$port
export PAM_MFA_PG_SOCKET=$dir/sock
export PAM_MFA_PG_BIN=$bin
export PAM_MFA_PG_CA=$dir/tls/ca.pem
export PAM_MFA_PG_OTHER_CA=$dir/tls/other-ca.pem
export PAM_MFA_PG_MODULE_CERT=$dir/tls/module.pem
export PAM_MFA_PG_MODULE_KEY=$dir/tls/module.key
export PAM_MFA_PG_ADMIN_CERT=$dir/tls/admin.pem
export PAM_MFA_PG_ADMIN_KEY=$dir/tls/admin.key
export PAM_MFA_PG_OTHER_CERT=$dir/tls/other.pem
export PAM_MFA_PG_OTHER_KEY=$dir/tls/other.key
ENV

if [ -n "$owner_pid" ]; then
    # Detached from our output, so a caller reading it sees its end now.
    setsid nohup bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" --stop "$3"' \
        watcher "$owner_pid" "$repo_root/tests/pg/start.sh" "$dir" </dev/null >/dev/null 2>&1 &
fi
echo "tests/pg/start.sh: PostgreSQL on 127.0.0.1:$port, TLS, in $dir"
