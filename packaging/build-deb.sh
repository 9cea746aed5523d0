#!/usr/bin/env bash
# Builds the Debian package: target/debian/pam-mfa_<version>_<arch>.deb.
#
# A staged tree and dpkg-deb --root-owner-group, with nothing but Debian's dpkg-dev and
# binutils: no debhelper, no cargo-deb. The version comes from Cargo.toml and must match
# packaging/debian/changelog; Depends comes from dpkg-shlibdeps.
#
#   packaging/build-deb.sh [--no-build]
#
#   --no-build   use target/release as it is (no cargo build --release --locked)
#
# What goes where:
#   /usr/lib/<multiarch>/security/pam_mfa.so   the module (stripped)
#   /usr/sbin/pam-mfa                          the admin command (stripped)
#   /usr/libexec/pam-mfa/pam-mfa-check         the helper for callers without root,
#                                              setuid root (4755, stripped)
#   /usr/share/lintian/overrides/pam-mfa       why the helper is setuid
#   /usr/bin/pam-mfa-user                      self-service for users (stripped)
#   /etc/pam-mfa/policy.toml                   conffile, from config/policy.toml
#   /usr/share/pam-configs/pam-mfa             pam-auth-update profile (Default: no)
#   /usr/share/man/man5/policy.toml.5          the policy file (packaging/man)
#   /usr/share/man/man8/                       pam_mfa.8 (packaging/man) and the pages that
#                                              `pam-mfa generate-man` writes
#   /usr/share/{bash-completion,zsh,fish}/...  what `pam-mfa generate-completions` writes
#   /usr/share/doc/pam-mfa/                    copyright, changelog.gz, README.md.gz,
#                                              policy.md.gz, third-party-licenses.gz
#   /var/lib/pam-mfa                           made by postinst (root, 0700), not shipped
set -euo pipefail

build=1
case "${1:-}" in
    "") ;;
    --no-build) build=0 ;;
    *)
        echo "usage: packaging/build-deb.sh [--no-build]" >&2
        exit 2
        ;;
esac

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
packaging="$repo_root/packaging"

die() {
    echo "build-deb: $*" >&2
    exit 1
}

for tool in dpkg-deb dpkg-shlibdeps dpkg-architecture dpkg-parsechangelog strip gzip python3; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool is missing: apt-get install dpkg-dev binutils python3"
done

if [ "$build" -eq 1 ]; then
    cargo build --release --locked
fi
module="target/release/libpam_mfa.so"
cli="target/release/pam-mfa"
helper="target/release/pam-mfa-check"
user_cli="target/release/pam-mfa-user"
if [ ! -f "$module" ] || [ ! -x "$cli" ] || [ ! -x "$helper" ] || [ ! -x "$user_cli" ]; then
    die "no release build: run cargo build --release --locked"
fi

# The [package] version in Cargo.toml, which the changelog must carry too.
version=$(awk '
    /^\[/ { in_package = ($0 == "[package]") }
    in_package && /^version[[:space:]]*=/ { gsub(/^[^"]*"|".*$/, ""); print; exit }
' Cargo.toml)
[ -n "$version" ] || die "no version in Cargo.toml"
changelog_version=$(dpkg-parsechangelog -l "$packaging/debian/changelog" -S Version)
[ "$changelog_version" = "$version" ] ||
    die "packaging/debian/changelog is at $changelog_version, Cargo.toml at $version: add an entry"
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)

out_dir="target/debian"
stage="$out_dir/pam-mfa_${version}_$arch"
deb="$out_dir/pam-mfa_${version}_$arch.deb"
rm -rf "$stage" "$deb"
mkdir -p "$stage"
umask 022

# Man pages and completions come from the CLI's own (hidden) generators, into
# target/generated; whatever is there is packaged, so a generator that is missing or fails
# leaves the package without those pages rather than without a package.
generated="target/generated"
rm -rf "$generated"
"$cli" generate-man "$generated/man" ||
    echo "build-deb: warning: pam-mfa generate-man failed; packaging what is in $generated/man" >&2
"$cli" generate-completions "$generated/completions" ||
    echo "build-deb: warning: pam-mfa generate-completions failed" >&2

# Files, with the modes dpkg-deb records (owner and group become root).
install -D -m 0644 "$module" "$stage/usr/lib/$multiarch/security/pam_mfa.so"
install -D -m 0755 "$cli" "$stage/usr/sbin/pam-mfa"
# As dh_strip does: shared objects keep their dynamic symbols (pam_sm_*).
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
    "$stage/usr/lib/$multiarch/security/pam_mfa.so"
strip --remove-section=.comment --remove-section=.note "$stage/usr/sbin/pam-mfa"
# The helper: setuid root, so that a screen locker running as the user can check the
# user's own code (and only that) without reading the root-only store itself.
install -D -m 0755 "$helper" "$stage/usr/libexec/pam-mfa/pam-mfa-check"
strip --remove-section=.comment --remove-section=.note "$stage/usr/libexec/pam-mfa/pam-mfa-check"
chmod 4755 "$stage/usr/libexec/pam-mfa/pam-mfa-check"
install -D -m 0755 "$user_cli" "$stage/usr/bin/pam-mfa-user"
strip --remove-section=.comment --remove-section=.note "$stage/usr/bin/pam-mfa-user"
install -D -m 0644 "$packaging/debian/lintian-overrides" \
    "$stage/usr/share/lintian/overrides/pam-mfa"
install -D -m 0644 config/policy.toml "$stage/etc/pam-mfa/policy.toml"
install -D -m 0644 "$packaging/pam-configs/pam-mfa" "$stage/usr/share/pam-configs/pam-mfa"

man_dir="$stage/usr/share/man/man8"
install -d -m 0755 "$man_dir"
install -m 0644 "$packaging/man/pam_mfa.8" "$man_dir/"
if [ -d "$generated/man" ]; then
    for page in "$generated/man"/*.8; do
        [ -e "$page" ] || continue
        install -m 0644 "$page" "$man_dir/"
    done
fi
gzip -9n "$man_dir"/*.8
man1_dir="$stage/usr/share/man/man1"
install -d -m 0755 "$man1_dir"
install -m 0644 "$packaging/man/pam-mfa-user.1" "$man1_dir/"
gzip -9n "$man1_dir"/*.1
man5_dir="$stage/usr/share/man/man5"
install -d -m 0755 "$man5_dir"
install -m 0644 "$packaging/man/policy.toml.5" "$man5_dir/"
gzip -9n "$man5_dir"/*.5

completions="$generated/completions"
if [ -f "$completions/pam-mfa.bash" ]; then
    install -D -m 0644 "$completions/pam-mfa.bash" \
        "$stage/usr/share/bash-completion/completions/pam-mfa"
fi
if [ -f "$completions/_pam-mfa" ]; then
    install -D -m 0644 "$completions/_pam-mfa" "$stage/usr/share/zsh/vendor-completions/_pam-mfa"
fi
if [ -f "$completions/pam-mfa.fish" ]; then
    install -D -m 0644 "$completions/pam-mfa.fish" \
        "$stage/usr/share/fish/vendor_completions.d/pam-mfa.fish"
fi

doc="$stage/usr/share/doc/pam-mfa"
install -d -m 0755 "$doc"
install -m 0644 "$packaging/debian/copyright" "$doc/copyright"
gzip -9n <"$packaging/debian/changelog" >"$doc/changelog.gz"
gzip -9n <README.md >"$doc/README.md.gz"
if [ -f docs/policy.md ]; then
    gzip -9n <docs/policy.md >"$doc/policy.md.gz"
fi

# The Rust crates linked into the two binaries (normal dependencies, not proc-macros or
# build scripts), each with the license texts its source ships.
cargo metadata --format-version 1 --locked --offline \
    --filter-platform "$(rustc -vV | awk '$1 == "host:" { print $2 }')" |
    python3 "$packaging/crate-licenses.py" | gzip -9n >"$doc/third-party-licenses.gz"

# Control files.
control="$stage/DEBIAN"
install -d -m 0755 "$control"
for script in postinst prerm postrm; do
    install -m 0755 "$packaging/debian/$script" "$control/$script"
done
echo "/etc/pam-mfa/policy.toml" >"$control/conffiles"
chmod 0644 "$control/conffiles"

# dpkg-shlibdeps wants to run from a source tree: give it a minimal one.
shlibs_tree=$(mktemp -d)
trap 'rm -rf "$shlibs_tree"' EXIT
mkdir "$shlibs_tree/debian"
printf 'Source: pam-mfa\n\nPackage: pam-mfa\nArchitecture: any\n' >"$shlibs_tree/debian/control"
shlibs=$(cd "$shlibs_tree" && dpkg-shlibdeps -O \
    "$repo_root/$stage/usr/lib/$multiarch/security/pam_mfa.so" \
    "$repo_root/$stage/usr/sbin/pam-mfa" \
    "$repo_root/$stage/usr/libexec/pam-mfa/pam-mfa-check" \
    "$repo_root/$stage/usr/bin/pam-mfa-user")
shlibs=${shlibs#shlibs:Depends=}
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependencies"

installed_size=$(du -s -k --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" \
    -e "s/@INSTALLED_SIZE@/$installed_size/" -e "s/@SHLIBS_DEPENDS@/$shlibs/" \
    "$packaging/debian/control.in" >"$control/control"
chmod 0644 "$control/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' |
    LC_ALL=C sort -z | xargs -0 md5sum) >"$control/md5sums"
chmod 0644 "$control/md5sums"

# Reproducible: every file dated by the changelog entry.
export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$packaging/debian/changelog" -S Timestamp)
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

dpkg-deb --build --root-owner-group -Zxz "$stage" "$deb" >/dev/null
echo "build-deb: $deb"
