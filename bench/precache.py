#!/usr/bin/env python3
"""Precache scaling (issue 5): `imgserv-precache --jobs 2` against `--jobs 1` on an emptied
cache, rendering every large photo of tests/fixtures (those of bench/miss.py) into every box
of a preset (5 photos × 8 boxes = 40 renders). Runs are interleaved, the order alternating
each round (1, 2 / 2, 1 / …), after one unmeasured warm-up run that loads the originals into
the page cache; medians of renders/s. The target: `--jobs 2` ≥ 1.7× `--jobs 1` on 2 cores.

Besides wall time it reports each run's CPU time (user + system of the process) over wall time:
how many cores the run kept busy, which tells a scheduling tail (work that cannot be split)
from a busy machine (cores taken by others). It also samples the CPU time of each thread
(/proc/PID/task, every 10 ms) and reports the split's balance, total ÷ busiest thread: the
speed-up this division of the work allows on idle cores, whatever else runs on the machine
(a busy machine — or kernel autogroups, which share the CPU by session, not by thread — caps
the wall ratio, not the balance). Balance × CPU(--jobs 1) ÷ CPU(--jobs 2), the split's
speed-up less the CPU the second thread costs (contention on memory, the index), estimates
the ratio on 2 idle cores; it is printed, the verdict is on the measured ratio.

    bench/precache.py --bin target/release [--rounds 5] [--boxes WxH,…] [--json out.json]
"""

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")

from benchlib import Site, loadavg, median, report, write_json
from miss import large_photos

BOXES = ["2048x1536", "1600x1200", "1280x960", "1024x768", "800x600", "640x480", "400x300",
         "200x200"]
TARGET = 1.7


def thread_cpu(pid, seen):
    """Updates seen[tid] with the CPU seconds (user + system) of each thread of pid."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        seen[tid] = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def run(precache, site, jobs, expected):
    """One run on an emptied cache; (wall s, CPU s, renders, CPU s of each thread)."""
    site.reset()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(site.dir / "precache.err", "w+") as err:
        p = subprocess.Popen(
            [precache, "--config", site.config, "--jobs", str(jobs), "--preset", "bench",
             site.originals],
            env={**os.environ, "IMGSERV_LOG": "warn"}, stdout=subprocess.DEVNULL, stderr=err)
        threads = {}
        while p.poll() is None:
            thread_cpu(p.pid, threads)
            time.sleep(0.01)
        wall = time.perf_counter() - start
        err.seek(0)
        stderr = err.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    m = re.search(r"(\d+) rendered, (\d+) already cached, (\d+) failed", stderr)
    if p.returncode != 0 or not m or int(m[1]) != expected:
        sys.exit(f"precache.py: --jobs {jobs} did not render {expected} variants "
                 f"({p.returncode}): {stderr[-800:]}")
    return wall, cpu, int(m[1]), sorted(threads.values(), reverse=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="directory of imgserv-precache")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--boxes", default=",".join(BOXES), help="the preset's boxes")
    ap.add_argument("--json")
    args = ap.parse_args()
    precache = Path(args.bin).resolve() / "imgserv-precache"
    photos = large_photos()
    boxes = args.boxes.split(",")
    presets = ", ".join(f'"{b}"' for b in boxes)
    site = Site(photos, extra_config=f"\n[presets]\nbench = [{presets}]")
    expected = len(photos) * len(boxes)
    cores = os.cpu_count()
    load_before = loadavg()
    samples = {1: [], 2: []}
    try:
        run(precache, site, 2, expected)  # warm-up: originals into the page cache
        for rnd in range(args.rounds):
            for jobs in ((1, 2) if rnd % 2 == 0 else (2, 1)):
                wall, cpu, n, threads = run(precache, site, jobs, expected)
                # The workers: the busiest `jobs` threads (the main thread only walks and waits).
                workers = threads[:jobs]
                balance = sum(workers) / workers[0] if workers and workers[0] else float("nan")
                samples[jobs].append({"wall_s": wall, "cpu_s": cpu, "renders": n,
                                      "renders_per_s": n / wall, "cores_busy": cpu / wall,
                                      "thread_cpu_s": threads, "balance": balance})
                print(f"round {rnd + 1} --jobs {jobs}: {n} renders in {wall:6.2f} s = "
                      f"{n / wall:5.2f}/s, CPU {cpu:6.2f} s ({cpu / wall:.2f} cores busy), "
                      f"threads {', '.join(f'{c:.2f}' for c in workers)} s  "
                      f"load {loadavg()}", file=sys.stderr)
    finally:
        site.remove()

    rate = {j: median([s["renders_per_s"] for s in v]) for j, v in samples.items()}
    busy = {j: median([s["cores_busy"] for s in v]) for j, v in samples.items()}
    paired = median([b["renders_per_s"] / a["renders_per_s"]
                     for a, b in zip(samples[1], samples[2])])
    ratio = rate[2] / rate[1]
    balance = median([s["balance"] for s in samples[2]])
    cpu = {j: median([s["cpu_s"] for s in v]) for j, v in samples.items()}
    idle = balance * cpu[1] / cpu[2]
    print(f"\nPrecache, {len(photos)} photos × {len(boxes)} boxes ({', '.join(boxes)}) = "
          f"{expected} renders on an empty cache, medians of {args.rounds} interleaved runs; "
          f"{cores} cores")
    for j in (1, 2):
        runs = ", ".join(f"{s['renders_per_s']:.2f}" for s in samples[j])
        print(f"  --jobs {j}  {rate[j]:6.2f} renders/s  {busy[j]:.2f} cores busy  "
              f"CPU {cpu[j]:.2f} s   runs: {runs}")
    print()
    checked = report([(f"precache: --jobs 2 ≥ {TARGET}× --jobs 1 on {cores} cores",
                       ratio >= TARGET, f"{ratio:.2f}×; median of paired rounds {paired:.2f}×")])
    print(f"       balance of the --jobs 2 split: {balance:.2f}× (CPU of both workers ÷ the "
          f"busiest's: the speed-up it allows on 2 idle cores); CPU --jobs 2 ÷ --jobs 1 "
          f"{cpu[2] / cpu[1]:.2f}; estimate on 2 idle cores {idle:.2f}×")
    if busy[1] < 0.9:
        print(f"       the machine was busy: --jobs 1 kept {busy[1]:.2f} of a core busy, "
              f"--jobs 2 {busy[2]:.2f} cores; the wall ratio is capped by that share")
    print(f"load average before {load_before}, after {loadavg()}")
    if args.json:
        write_json(args.json, {
            "photos": photos, "boxes": boxes, "renders": expected, "cores": cores,
            "runs": {str(j): v for j, v in samples.items()},
            "median_renders_per_s": {str(j): r for j, r in rate.items()},
            "median_cores_busy": {str(j): b for j, b in busy.items()},
            "median_cpu_s": {str(j): c for j, c in cpu.items()}, "idle_estimate": idle,
            "paired_ratio": paired, "balance_jobs2": balance, "load_before": load_before, "load_after": loadavg(),
            "checks": checked,
        })


if __name__ == "__main__":
    main()
