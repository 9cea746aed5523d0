#!/usr/bin/env python3
"""Prints how long an in-place 96-byte pwrite + fdatasync takes in DIR right now (median and
90th percentile of 200): the flush cost that dominates every durable login, noted with each
benchmark run because on a shared machine it moves from one minute to the next."""

import os
import sys
import time


def main():
    path = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "fsync-probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.pwrite(fd, b"\0" * 4192, 0)
        os.fsync(fd)
        times = []
        for i in range(200):
            start = time.perf_counter()
            os.pwrite(fd, bytes([i & 0xFF]) * 96, (i % 2) * 4096)
            os.fdatasync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    print(f"in-place pwrite + fdatasync: median {times[100] * 1e6:.0f} µs, "
          f"p90 {times[180] * 1e6:.0f} µs (200 in a row)")


if __name__ == "__main__":
    main()
