#!/usr/bin/env python3
"""What syncing a new variant costs a miss (BENCHMARKS.md item 18): the time `imgserv.cgi`
spends in fsync/fdatasync of files and directories below the cache, from `strace -T`, for a
miss of a new source (its directories are made and synced too) and of a second box of a known
source (the file before the rename, its directory after). The syscalls' own durations are
I/O waits, so they stay readable on a machine whose CPU is busy, where whole-miss timings
(`bench/miss.py --baseline-env IMGSERV_FSYNC=0`) drown a few milliseconds in noise.

    bench/sync.py --imgserv target/release/imgserv-cgi [--rounds 40] [--json out.json]
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import Site, cgi_env, loadavg, median, write_json

PHOTO = "photo-rocket-640x427.jpg"
SYNC = re.compile(r"^\d+\s+(?:fsync|fdatasync)\(\d+<([^>]*)>\)\s+=\s+0\s+<([\d.]+)>")


def synced(imgserv, site, width, log):
    """(seconds in syncs below the cache, how many) of one miss."""
    env = cgi_env(site, f"src={PHOTO}&width={width}&height={width}")
    out = subprocess.run(
        ["strace", "-f", "-qq", "-y", "-T", "-o", str(log), "-e", "trace=fsync,fdatasync",
         imgserv], env=env, stdout=subprocess.PIPE, check=True).stdout
    if not out.startswith(b"Status: 302"):
        raise RuntimeError(f"imgserv.cgi answered {out[:200]!r}")
    total, count = 0.0, 0
    for line in log.read_text().splitlines():
        m = SYNC.match(line)
        if m and m[1].startswith(str(site.cache)):
            total += float(m[2])
            count += 1
    return total, count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--imgserv", required=True)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--json")
    args = ap.parse_args()
    if not shutil.which("strace"):
        sys.exit("sync.py: strace is missing (scripts/install-deps.sh --bench)")
    imgserv = str(Path(args.imgserv).resolve())
    site = Site([PHOTO])
    tmp = Path(tempfile.mkdtemp(prefix="imgserv-bench-strace-"))
    load_before = loadavg()
    runs = {"new source": [], "known source": []}
    counts = {}
    try:
        for _ in range(args.rounds):
            site.reset()
            for label, width in (("new source", 300), ("known source", 200)):
                seconds, n = synced(imgserv, site, width, tmp / "trace")
                runs[label].append(seconds * 1e3)
                counts[label] = n
    finally:
        site.remove()
        shutil.rmtree(tmp, ignore_errors=True)
    results = {"load_before": load_before, "load_after": loadavg(), "misses": []}
    print(f"\nTime in syncs below the cache a miss, {args.rounds} rounds (ms)")
    for label, xs in runs.items():
        xs.sort()
        p10, p90 = xs[len(xs) // 10], xs[len(xs) * 9 // 10]
        print(f"{label:<13} {counts[label]} syncs  median {median(xs):6.2f}  "
              f"p10 {p10:6.2f}  p90 {p90:6.2f}")
        results["misses"].append({"miss": label, "syncs": counts[label],
                                  "median_ms": median(xs), "p10_ms": p10, "p90_ms": p90})
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
