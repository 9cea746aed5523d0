#!/usr/bin/env python3
"""Turns the raw results of scripts/bench.sh into results.md (markdown tables and the verdict on
each target) and latency.svg (median and p99 latency against enrolled accounts, gnuplot).

  report.py DIR [--criterion DIR]

DIR holds what bench.sh wrote: logins-disk.tsv and logins-tmpfs.tsv (the interleaved
logins with the stores on disk and on tmpfs), nss.tsv, pinned.tsv, rss.tsv, load.tsv and
machine.txt; fleet.tsv (benches/fleet.sh: the fleet store beside the file store).
--criterion points at criterion's output (target/criterion) for the
micro-benchmark of the decision path.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

MODULES = [
    ("bench-mfa", "pam_mfa"),
    ("bench-ga", "google-authenticator"),
    ("bench-oath", "pam_oath"),
]
REFERENCES = [
    ("bench-permit", "libpam + pam_permit alone"),
    ("@nss", "NSS lookups as pam_mfa makes them (measured accounts in passwd)"),
    ("@syslog", "one audit datagram to /dev/log"),
    ("@fdatasync", "state-file write: open, pwrite 96 B, fdatasync, close"),
]
MICRO = [
    ("decision_and_verify", "evaluate + verify_totp (window 1): the target"),
    ("evaluate/root", "evaluate: uid 0"),
    ("evaluate/privileged_group", "evaluate: account in a privileged group (rule 1)"),
    ("evaluate/default_mode", "evaluate: no rule matches"),
    ("verify_totp_window_1/valid", "verify_totp, window 1, valid code"),
    ("verify_totp_window_1/wrong", "verify_totp, window 1, wrong code"),
    ("parse/policy", "policy::parse of the benchmark policy (the module does it every login)"),
    ("parse/record", "Record::parse of one record (every login)"),
    ("login_cpu_parse_decide_verify", "parse policy + evaluate + parse record + verify"),
]
FIELDS = [
    "scale", "service", "phase", "n", "failed", "median", "p90", "p99", "mean", "max",
    "per_s", "rc", "prompts", "faults",
]
STORAGES = [
    ("disk", "stores on disk (ext4): every state update reaches the disk (fdatasync)"),
    ("tmpfs", "stores on tmpfs: the same logins where a flush costs nothing"),
]
TARGET_RATIO = 0.4
TARGET_SCALE = 1.2
TARGET_DECISION_NS = 5000


def read_rows(path):
    """Rows of a harness TSV. A service named MODULE@SCALE is that module at that scale; any
    other service takes the scale column (or 0, a reference timed once for every scale)."""
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != len(FIELDS):
                continue
            row = dict(zip(FIELDS, parts))
            for key in FIELDS[3:]:
                row[key] = float(row[key])
            service, scale = row["service"], ""
            if not service.startswith("@"):
                service, _, scale = service.partition("@")
            if not scale:
                scale = row["scale"]
            row["service"] = service
            row["scale"] = int(scale) if scale.isdigit() else 0
            rows.append(row)
    return rows


def index(rows):
    return {(r["scale"], r["service"], r["phase"]): r for r in rows}


def us(value):
    if value >= 10000:
        return f"{value / 1000:.1f} ms"
    if value >= 100:
        return f"{value:.0f} µs"
    return f"{value:.1f} µs"


def ns(value):
    return f"{value / 1000:.2f} µs" if value >= 1000 else f"{value:.0f} ns"


def micro_results(criterion_dir):
    found = {}
    if not criterion_dir or not os.path.isdir(criterion_dir):
        return found
    for root, _dirs, files in os.walk(criterion_dir):
        if os.path.basename(root) != "new" or "estimates.json" not in files:
            continue
        try:
            with open(os.path.join(root, "benchmark.json")) as f:
                name = json.load(f)["full_id"]
            with open(os.path.join(root, "estimates.json")) as f:
                estimates = json.load(f)
        except (OSError, KeyError, ValueError):
            continue
        median = estimates["median"]
        found[name] = (
            median["point_estimate"],
            median["confidence_interval"]["lower_bound"],
            median["confidence_interval"]["upper_bound"],
        )
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("dir")
    parser.add_argument("--criterion")
    args = parser.parse_args()
    out = args.dir
    runs = {
        storage: index(read_rows(os.path.join(out, f"logins-{storage}.tsv")))
        for storage, _ in STORAGES
    }
    runs = {storage: rows for storage, rows in runs.items() if rows}
    nss_all = index(read_rows(os.path.join(out, "nss.tsv")))
    pinned = index(read_rows(os.path.join(out, "pinned.tsv")))
    scales = sorted({key[0] for rows in runs.values() for key in rows if key[0]})
    fleet = fleet_section(os.path.join(out, "fleet.tsv"))
    if not scales and not fleet:
        sys.exit("report: no results in " + out)
    lines = []
    emit = lines.append

    machine = os.path.join(out, "machine.txt")
    if os.path.exists(machine):
        emit("## Machine and run\n")
        emit("```")
        with open(machine) as f:
            emit(f.read().rstrip())
        emit("```\n")

    if not scales:  # --fleet-only
        lines.extend(fleet)
        with open(os.path.join(out, "results.md"), "w") as f:
            f.write("\n".join(lines))
        print(f"report: wrote {os.path.join(out, 'results.md')}", file=sys.stderr)
        return

    for storage, title in STORAGES:
        logins = runs.get(storage)
        if not logins:
            continue
        emit(f"## Per-login latency, valid code, steady state: {title}\n")
        emit(
            "pam_start + pam_authenticate + pam_end through libpam (pam_wrapper); libpam loads "
            "and unloads the module on every login, as in a fresh sshd or sudo process. Every "
            "module at every scale, and the pam_permit floor, were timed in one interleaved "
            "run. n: measured logins. Ratio: the module's median over google-authenticator's "
            "at the same scale.\n"
        )
        emit(
            "| enrolled accounts | module | n | median | mean | p90 | p99 | logins/s "
            "| page faults | median ÷ GA |"
        )
        emit("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for scale in scales:
            ga = logins.get((scale, "bench-ga", "success"))
            for service, label in MODULES + [("bench-permit", "libpam + pam_permit (floor)")]:
                row = logins.get((scale, service, "success")) or logins.get(
                    (0, service, "success")
                )
                if not row:
                    continue
                ratio = f"{row['median'] / ga['median']:.2f}" if ga else "-"
                emit(
                    f"| {scale:,} | {label} | {int(row['n'])} | {us(row['median'])} | "
                    f"{us(row['mean'])} | {us(row['p90'])} | {us(row['p99'])} | "
                    f"{row['per_s']:.0f} | {row['faults']:.0f} | {ratio} |"
                )
        emit("")

    for storage, title in STORAGES:
        logins = runs.get(storage)
        if not logins:
            continue
        emit(f"## Every phase: {title}\n")
        emit(
            "login1 and login2: each account's first and second login (warm-up; pam_mfa "
            "creates the account's state file on the first). success: the steady state. "
            "wrong: one wrong code (pam_mfa counts it durably; google-authenticator then "
            "computes ±25 hours of codes, 3,000 HMACs, looking for a clock skew). locked: "
            "pam_mfa with the account locked after max_failures wrong codes, offered a valid "
            "code and refusing it (PAM_MAXTRIES) without a prompt. rc: the return code most "
            "logins got; failed: logins that did not end as expected.\n"
        )
        emit("| accounts | module | phase | n | failed | rc | prompts | median | p99 | logins/s |")
        emit("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for scale in scales:
            for service, label in MODULES:
                for phase in ("login1", "login2", "success", "wrong", "locked"):
                    row = logins.get((scale, service, phase))
                    if row:
                        emit(
                            f"| {scale:,} | {label} | {phase} | {int(row['n'])} | "
                            f"{int(row['failed'])} | {int(row['rc'])} | "
                            f"{row['prompts']:.0f} | {us(row['median'])} | "
                            f"{us(row['p99'])} | {row['per_s']:.0f} |"
                        )
        emit("")

    emit("## References, timed in the same interleaved loops\n")
    emit("| storage | what | median | p99 |")
    emit("|---|---|---:|---:|")
    for storage, _ in STORAGES:
        logins = runs.get(storage)
        if not logins:
            continue
        for service, label in REFERENCES:
            row = logins.get((0, service, "success"))
            if row:
                emit(f"| {storage} | {label} | {us(row['median'])} | {us(row['p99'])} |")
    for scale in scales:
        row = nss_all.get((scale, "@nss", "success"))
        if row:
            emit(
                f"| - | NSS lookups with all {scale:,} accounts in passwd (nss_wrapper) | "
                f"{us(row['median'])} | {us(row['p99'])} |"
            )
    emit("")

    if pinned:
        emit("## Modules kept loaded (a long-running PAM application)\n")
        emit(
            "The same logins with every module dlopen()ed once beforehand, so libpam's dlopen "
            "in pam_start finds it mapped and pam_end's dlclose does not unmap it: what is "
            "left is the modules' own work. Separate run, smallest scale.\n"
        )
        emit("| accounts | module | phase | median | p99 | logins/s | page faults |")
        emit("|---:|---|---|---:|---:|---:|---:|")
        for (scale, service, phase), row in sorted(pinned.items()):
            if phase not in ("success", "wrong", "locked"):
                continue
            label = dict(MODULES + REFERENCES).get(service, service)
            emit(
                f"| {f'{scale:,}' if scale else '-'} | {label} | {phase} | {us(row['median'])} "
                f"| {us(row['p99'])} | {row['per_s']:.0f} | {row['faults']:.0f} |"
            )
        emit("")

    load_path = os.path.join(out, "load.tsv")
    if os.path.exists(load_path):
        emit("## Loading a module\n")
        emit(
            "dlopen(RTLD_NOW) + dlclose, as libpam does at pam_start and pam_end: the first "
            "time in the process, and the median of 200.\n"
        )
        emit("| module | first | median | still mapped after dlclose |")
        emit("|---|---:|---:|---|")
        with open(load_path) as f:
            for line in f:
                _, path, first, median, mapped = line.rstrip("\n").split("\t")
                emit(
                    f"| {os.path.basename(path)} | {us(float(first))} | {us(float(median))} "
                    f"| {mapped} |"
                )
        emit("")

    rss_path = os.path.join(out, "rss.tsv")
    if os.path.exists(rss_path):
        emit("## Memory\n")
        emit(
            "Peak RSS a process gains by loading the module and authenticating once (after "
            "one pam_permit login has warmed libpam; peak reset through "
            "/proc/self/clear_refs), and the RSS it keeps while the module stays loaded.\n"
        )
        emit("| module | peak gained | kept | of which anonymous | of which file-backed | rc |")
        emit("|---|---:|---:|---:|---:|---:|")
        labels = dict(MODULES + [("bench-permit", "pam_permit")])
        with open(rss_path) as f:
            for line in f:
                _, service, before, hwm, after, anon, mapped, rc = line.rstrip("\n").split("\t")
                service = service.partition("@")[0]
                emit(
                    f"| {labels.get(service, service)} | {int(hwm) - int(before)} KiB | "
                    f"{int(after) - int(before)} KiB | {anon} KiB | {mapped} KiB | {rc} |"
                )
        emit("")

    lines.extend(fleet)

    micro = micro_results(args.criterion)
    if micro:
        emit("## The decision path alone (criterion, benches/decision.rs)\n")
        emit("| benchmark | what | median | 95% interval |")
        emit("|---|---|---:|---:|")
        for name, label in MICRO:
            if name in micro:
                point, low, high = micro[name]
                emit(f"| `{name}` | {label} | {ns(point)} | {ns(low)} – {ns(high)} |")
        emit("")

    emit("## Targets\n")
    emit("| target | stores on | measured | met |")
    emit("|---|---|---|---|")
    for storage, _ in STORAGES:
        logins = runs.get(storage)
        if not logins:
            continue
        ratios = []
        for scale in scales:
            mfa = logins.get((scale, "bench-mfa", "success"))
            ga = logins.get((scale, "bench-ga", "success"))
            if mfa and ga:
                ratios.append((scale, mfa["median"] / ga["median"], mfa["mean"] / ga["mean"]))
        if ratios:
            text = "; ".join(f"{s:,}: {r:.2f} (mean {m:.2f})" for s, r, m in ratios)
            met = all(r <= TARGET_RATIO for _, r, _ in ratios)
            emit(
                f"| pam_mfa median ≤ {TARGET_RATIO} × google-authenticator's | {storage} | "
                f"{text} | {'yes' if met else 'no'} |"
            )
        first = logins.get((scales[0], "bench-mfa", "success"))
        last = logins.get((scales[-1], "bench-mfa", "success"))
        if first and last and len(scales) > 1:
            growth = last["median"] / first["median"]
            emit(
                f"| pam_mfa at {scales[-1]:,} accounts within 20% of {scales[0]:,} | {storage} | "
                f"median × {growth:.2f} ({us(first['median'])} → {us(last['median'])}) | "
                f"{'yes' if growth <= TARGET_SCALE else 'no'} |"
            )
    if "decision_and_verify" in micro:
        point = micro["decision_and_verify"][0]
        emit(
            f"| decision and verification < 5 µs | - | {ns(point)} | "
            f"{'yes' if point < TARGET_DECISION_NS else 'no'} |"
        )
    emit("")

    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines))
    if scales:
        plot(out, scales, runs)
    print(f"report: wrote {os.path.join(out, 'results.md')}", file=sys.stderr)


def fleet_section(path):
    """The tables of fleet.tsv (benches/fleet.sh), or nothing when it is absent."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    lines = ["## Fleet store (PostgreSQL, TLS) beside the file store, two hosts\n"]
    lines.append(
        "benches/fleet.sh: two hosts are two policy files; the fleet store's share one "
        "PostgreSQL (TLS, client certificates, fsync on), each file host has its own store. "
        "Every login is a new HOTP code through the real libpam; the fleet's go through the "
        "helper pam-mfa-check. Runs of the two stores alternate.\n"
    )
    lines.append("| store | clients | run | logins | median | p90 | p99 | max | logins/s | failed |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    seen = {}
    for r in (r for r in rows if r[0] == "clients"):
        key = (r[1], r[2])
        seen[key] = seen.get(key, 0) + 1
        lines.append(
            f"| {r[1]} | {r[2]} | {seen[key]} | {r[3]} | {us(float(r[4]))} | {us(float(r[5]))} | {us(float(r[6]))} "
            f"| {us(float(r[7]))} | {float(r[8]):.0f} | {r[9]} |"
        )
    lines.append("")
    races = [r for r in rows if r[0] == "race"]
    if races:
        lines.append("One valid code sent by 16 clients at once, 8 to each host, per round:\n")
        lines.append("| store | rounds | exactly one in | more than one in | none in | most in one round |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for r in races:
            lines.append(f"| {r[1]} | {r[2]} | {r[4]} | {r[5]} | {r[6]} | {r[7]} |")
        lines.append("")
    locks = [r for r in rows if r[0] == "lockout"]
    if locks:
        lines.append(
            "16 wrong codes at once over both hosts, per account, `max_failures = 10`: how many "
            "were checked against the secret (the rest refused as locked), and the accounts a "
            "valid code still opened afterwards:\n"
        )
        lines.append("| store | accounts | checked (fewest) | checked (most) | left open |")
        lines.append("|---|---:|---:|---:|---:|")
        for r in locks:
            lines.append(f"| {r[1]} | {r[2]} | {r[5]} | {r[6]} | {r[7]} |")
        lines.append("")
    return lines


def plot(out, scales, runs):
    series = MODULES + [("bench-permit", "")]
    panels = []
    for storage, _ in STORAGES:
        logins = runs.get(storage)
        if not logins:
            continue
        data = os.path.join(out, f"latency-{storage}.dat")
        with open(data, "w") as f:
            f.write("# accounts")
            for service, _ in series:
                f.write(f"\t{service}_median\t{service}_p99")
            f.write("\n")
            for scale in scales:
                f.write(str(scale))
                for service, _ in series:
                    row = logins.get((scale, service, "success")) or logins.get(
                        (0, service, "success")
                    )
                    f.write(f"\t{row['median']:.1f}\t{row['p99']:.1f}" if row else "\tNaN\tNaN")
                f.write("\n")
        panels.append((storage, data))
    if not shutil.which("gnuplot"):
        print("report: gnuplot not found, no plot", file=sys.stderr)
        return
    titles = {
        "disk": "stores on disk (ext4, fdatasync)",
        "tmpfs": "stores on tmpfs (no flush cost)",
    }
    script = f"""
set terminal svg size {560 * len(panels) + 40},600 dynamic font "sans,12" background "white"
set output "{os.path.join(out, 'latency.svg')}"
set multiplot layout 1,{len(panels)} title "Per-login latency against enrolled accounts (libpam, valid code, steady state; solid: median, dashed: p99)"
set xlabel "enrolled accounts"
set ylabel "µs per login (log scale)"
set logscale xy
set format y "%.0f"
set xtics ({", ".join(f'"{s:,}" {s}' for s in scales)})
set xrange [{scales[0] / 1.6}:{scales[-1] * 1.6}]
set yrange [10:*]
set grid ytics mytics xtics
set key top left font ",10"
set style line 1 lc rgb "#1b7837" lw 2.5 pt 7 ps 1.1
set style line 2 lc rgb "#2166ac" lw 2.5 pt 5 ps 1.1
set style line 3 lc rgb "#b2182b" lw 2.5 pt 9 ps 1.2
set style line 4 lc rgb "#777777" lw 1.5 pt 1 ps 1.0
set style line 11 lc rgb "#1b7837" lw 1.2 dt 2 pt 6
set style line 12 lc rgb "#2166ac" lw 1.2 dt 2 pt 4
set style line 13 lc rgb "#b2182b" lw 1.2 dt 2 pt 8
"""
    for storage, data in panels:
        script += f"""
set title "{titles.get(storage, storage)}"
plot "{data}" using 1:2 with linespoints ls 1 title "pam\\\\_mfa", \\
     "" using 1:3 with linespoints ls 11 notitle, \\
     "" using 1:4 with linespoints ls 2 title "google-authenticator", \\
     "" using 1:5 with linespoints ls 12 notitle, \\
     "" using 1:6 with linespoints ls 3 title "pam\\\\_oath", \\
     "" using 1:7 with linespoints ls 13 notitle, \\
     "" using 1:8 with linespoints ls 4 title "libpam + pam\\\\_permit"
"""
    script += "unset multiplot\n"
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


if __name__ == "__main__":
    main()
