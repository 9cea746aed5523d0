#!/usr/bin/env python3
"""Creates N enrolled accounts for the login benchmark, in one directory, for all three modules.

Writes, under DIR:
  passwd, group       the accounts for nss_wrapper: root, benchrss (the account the peak-RSS
                      probe logs in with) and the SUBSET measured accounts m000001.. (uid
                      20000+k, primary group users); every tenth is also in group sudo.
                      Identical at every N, so one NSS database serves every scale.
  passwd-all          root, benchrss and all N accounts, for the NSS reference (what a flat
                      passwd file of N accounts costs a lookup under nss_wrapper)
  policy.toml         the pam_mfa policy (a bastion policy: privileged groups required, the
                      rest optional; fail_delay_ms = 0, max_failures = 5, lockout_seconds = 300)
  mfa/                pam_mfa's store: <user>.toml records, mode 0600, directory 0700
  ga/                 google-authenticator-libpam: one file per account (secret=DIR/ga/${USER}
                      user=root): base32 secret, WINDOW_SIZE 3, DISALLOW_REUSE, TOTP_AUTH,
                      mode 0400, as `google-authenticator -t -d -W -u -e 0` writes it
  oath/users.oath     pam_oath's users file: one `HOTP/T30/6 user - hexsecret` line per account
  accounts.txt        the measured accounts, `user base32secret` per line (the same at every N)
  rss.txt             `benchrss base32secret`

The N accounts are the SUBSET measured ones, spread evenly among N - SUBSET others
(u000001...), so a measured account sits on average in the middle of the users file whatever
N is. Every secret is derived from the account's name and a fixed seed: the same account has
the same secret in the three stores and at every N, and a run can be repeated.
"""

import argparse
import base64
import hashlib
import os
import sys

SUDO_EVERY = 10


def secret_for(seed, name):
    return hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=20).digest()


def b32(raw):
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def write_private(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--accounts", type=int, required=True, help="enrolled accounts (N)")
    parser.add_argument("--subset", type=int, required=True, help="accounts that log in")
    parser.add_argument("--dir", required=True, help="an empty directory to fill")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    total, subset = args.accounts, min(args.subset, args.accounts)
    root = os.path.abspath(args.dir)
    os.umask(0o077)

    measured = [f"m{k:06d}" for k in range(1, subset + 1)]
    # Measured account k sits at position k * total / subset; the others fill the gaps.
    slots = {(k * total) // subset: name for k, name in enumerate(measured)}
    names, filler = [], 0
    for position in range(total):
        if position in slots:
            names.append(slots[position])
        else:
            filler += 1
            names.append(f"u{filler:06d}")
    secrets = [secret_for(args.seed, name) for name in names]
    rss_secret = secret_for(args.seed, "benchrss")
    sudo_members = [name for k, name in enumerate(measured) if k % SUDO_EVERY == 0]

    def passwd_line(name):
        uid = 20000 + int(name[1:]) if name.startswith("m") else 100000 + int(name[1:])
        return f"{name}:x:{uid}:100:bench:/nonexistent:/usr/sbin/nologin\n"

    head = (
        "root:x:0:0:root:/root:/bin/bash\n"
        "benchrss:x:9999:100:bench:/nonexistent:/usr/sbin/nologin\n"
    )
    with open(os.path.join(root, "passwd"), "w") as f:
        f.write(head + "".join(passwd_line(name) for name in measured))
    with open(os.path.join(root, "passwd-all"), "w") as f:
        f.write(head + "".join(passwd_line(name) for name in names))
    with open(os.path.join(root, "group"), "w") as f:
        f.write("root:x:0:\n")
        f.write("wheel:x:10:\n")
        f.write(f"sudo:x:27:{','.join(sudo_members)}\n")
        f.write("users:x:100:\n")

    mfa = os.path.join(root, "mfa")
    ga = os.path.join(root, "ga")
    oath = os.path.join(root, "oath")
    for d in (mfa, ga, oath):
        os.mkdir(d, 0o700)

    with open(os.path.join(root, "policy.toml"), "w") as f:
        f.write(
            f"""# pam-mfa benchmark policy: a bastion's, as in config/policy.toml.
store_dir = "{mfa}"
default_mode = "optional"
fail_delay_ms = 0
max_failures = 5
lockout_seconds = 300

[[rule]]
name = "privileged"
groups = ["sudo", "wheel", "admin"]
mode = "required"

[[rule]]
name = "contractors"
users = ["c-ops1", "c-ops2", "c-ops3"]
from = ["192.0.2.0/24"]
mode = "required"

[[rule]]
name = "backup-service"
users = ["backup"]
mode = "exempt"
"""
        )
    os.chmod(os.path.join(root, "policy.toml"), 0o644)

    def enroll(name, raw):
        secret = b32(raw)
        write_private(
            os.path.join(mfa, name + ".toml"),
            "# pam-mfa secret record: keep it private, it is a password.\n"
            f'kind = "totp"\nsecret = "{secret}"\nalgorithm = "SHA1"\n'
            "digits = 6\nperiod = 30\nwindow = 1\n",
        )
        write_private(
            os.path.join(ga, name),
            f'{secret}\n" WINDOW_SIZE 3\n" DISALLOW_REUSE\n" TOTP_AUTH\n',
            0o400,
        )

    oath_lines = []
    for name, raw in zip(names, secrets):
        enroll(name, raw)
        oath_lines.append(f"HOTP/T30/6\t{name}\t-\t{raw.hex()}\n")
    enroll("benchrss", rss_secret)
    oath_lines.append(f"HOTP/T30/6\tbenchrss\t-\t{rss_secret.hex()}\n")
    write_private(os.path.join(oath, "users.oath"), "".join(oath_lines))

    with open(os.path.join(root, "accounts.txt"), "w") as f:
        for name in measured:
            f.write(f"{name} {b32(secret_for(args.seed, name))}\n")
    with open(os.path.join(root, "rss.txt"), "w") as f:
        f.write(f"benchrss {b32(rss_secret)}\n")
    print(f"setup: {total} accounts enrolled in {root}, {subset} measured", file=sys.stderr)


if __name__ == "__main__":
    main()
