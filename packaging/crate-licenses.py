#!/usr/bin/env python3
"""Lists the Rust crates linked into pam_mfa.so and pam-mfa, with the license texts
their sources ship, from `cargo metadata --format-version 1` on standard input.

Only normal dependencies count: proc-macros and build-dependencies run at build time and
are not in the binaries. Written to standard output; build-deb.sh gzips it into
/usr/share/doc/pam-mfa/third-party-licenses.gz.
"""

import json
import pathlib
import sys

LICENSE_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "UNLICENSE", "COPYRIGHT")


def linked_crates(meta):
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    seen, todo = set(), [meta["resolve"]["root"]]
    while todo:
        for dep in nodes[todo.pop()]["deps"]:
            package = packages[dep["pkg"]]
            normal = any(kind["kind"] is None for kind in dep["dep_kinds"])
            proc_macro = any("proc-macro" in t["kind"] for t in package["targets"])
            if normal and not proc_macro and dep["pkg"] not in seen:
                seen.add(dep["pkg"])
                todo.append(dep["pkg"])
    return sorted((packages[i] for i in seen), key=lambda p: (p["name"], p["version"]))


def main():
    crates = linked_crates(json.load(sys.stdin))
    out = sys.stdout
    out.write("Rust crates linked statically into pam_mfa.so and pam-mfa\n\n")
    for crate in crates:
        licence = crate["license"] or crate.get("license_file") or "see below"
        out.write(f"{crate['name']} {crate['version']}: {licence}\n")
    for crate in crates:
        source = pathlib.Path(crate["manifest_path"]).parent
        texts = sorted(
            f for f in source.iterdir() if f.is_file() and f.name.upper().startswith(LICENSE_PREFIXES)
        )
        if not texts:
            texts_note = "(the crate's source ships no license file)\n"
            out.write(f"\n{'=' * 72}\n{crate['name']} {crate['version']}\n{'=' * 72}\n\n{texts_note}")
        for text in texts:
            out.write(f"\n{'=' * 72}\n{crate['name']} {crate['version']}: {text.name}\n{'=' * 72}\n\n")
            out.write(text.read_text(errors="replace"))


if __name__ == "__main__":
    main()
