#!/usr/bin/env python3
"""imgserv against a live peer (issue 5): thumbor (PyPI, in a venv; file loader, no storage, no
result storage, loopback) and imgserv's standalone server, on the large photos fitted into
800x600 at quality 85, every request a miss (distinct boxes, [cache] raster = 1).

  latency     sequential requests on kept-alive connections, interleaved imgserv, thumbor,
              imgserv, …; medians per photo
  throughput  wrk -t2 -c4 on the 12 MP photo, every request a distinct box (bench/boxes.lua),
              imgserv (2 workers) against thumbor --processes 2; medians of interleaved runs,
              and the CPU a request of each server's processes, which does not depend on how
              thumbor's two processes happen to share wrk's four connections

    bench/thumbor.py --imgserv target/release/imgserv-cgi --thumbor VENV/bin/thumbor
"""

import argparse
import http.client
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchlib import REPO, Site, free_port, loadavg, median, report, wait_port, write_json
from miss import large_photos

BIG = "photo-nexus6p-exif-4032x3024.jpg"


class Client:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path):
        start = time.perf_counter()
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        body = r.read()
        return time.perf_counter() - start, r.status, body


def stat(pid):
    """The fields of /proc/PID/stat after the command name (state, ppid, …), None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def cpu_seconds(pid):
    """User + system CPU of `pid` and of its children (thumbor serves from forked processes)."""
    stats = [stat(pid)] + [s for s in map(stat, filter(str.isdigit, os.listdir("/proc")))
                           if s is not None and int(s[1]) == pid]
    ticks = sum(int(s[11]) + int(s[12]) for s in stats if s is not None)
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(port, path_fmt, peer, duration):
    """Requests/s and the number of requests of one wrk run."""
    p = subprocess.run(
        ["wrk", "-t2", "-c4", f"-d{duration}s", "-s", str(REPO / "bench" / "boxes.lua"),
         f"http://127.0.0.1:{port}/", "--", path_fmt],
        capture_output=True, text=True, check=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", p.stdout)[1])
    requests = int(re.search(r"(\d+) requests in", p.stdout)[1])
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", p.stdout)
    if bad:
        sys.exit(f"thumbor.py: {peer}: {bad[1]} responses were not 2xx/3xx\n{p.stdout}")
    return rps, requests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--imgserv", required=True)
    ap.add_argument("--thumbor", required=True)
    ap.add_argument("--requests", type=int, default=15, help="per photo and server")
    ap.add_argument("--rounds", type=int, default=3, help="wrk rounds")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--json")
    args = ap.parse_args()
    photos = large_photos()
    site = Site(photos, extra_config="raster = 1")
    tconf = site.dir / "thumbor.conf"
    tconf.write_text(f"""
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = '{site.originals}'
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
ALLOW_UNSAFE_URL = True
QUALITY = 85
RESPECT_ORIENTATION = True
MAX_AGE = 0
""")
    ip, tp = free_port(), free_port()
    procs = [None]

    def start_imgserv():
        """(Re)starts imgserv on an empty cache: boxes of an earlier wrk run must miss too."""
        if procs[0] is not None:
            procs[0].terminate()
            procs[0].wait()
        site.reset()
        procs[0] = subprocess.Popen(
            [Path(args.imgserv).resolve(), "--listen", f"127.0.0.1:{ip}", "--config",
             site.config, "--workers", "2"], env={**os.environ, "IMGSERV_LOG": "warn"})
        wait_port(ip, procs[0])

    try:
        start_imgserv()
        procs.append(subprocess.Popen(
            [args.thumbor, "--ip", "127.0.0.1", "--port", str(tp), "--conf", str(tconf),
             "--processes", "2", "-l", "warning"], start_new_session=True))
        wait_port(tp, procs[1], timeout=60)
        paths = {
            "imgserv": "/imgserv.cgi?src={src}&width={w}&height={h}",
            "thumbor": "/unsafe/fit-in/{w}x{h}/{src}",
        }
        clients = {"imgserv": Client(ip), "thumbor": Client(tp)}
        expect = {"imgserv": 302, "thumbor": 200}
        # Warm-up: both servers load their code and the files reach the page cache.
        for peer, c in clients.items():
            for src in photos:
                _, status, _ = c.get(paths[peer].format(src=src, w=100, h=100))
                assert status == expect[peer], (peer, src, status)

        load_before = loadavg()
        lat = {(src, p): [] for src in photos for p in paths}
        for i in range(args.requests):
            for src in photos:
                order = list(paths) if i % 2 == 0 else list(reversed(paths))
                for peer in order:
                    # A distinct box each request: always a miss for imgserv.
                    # Both sides shrink, so the fitted size differs for portraits too.
                    w, h = 800 - i, 600 - i
                    t, status, _ = clients[peer].get(paths[peer].format(src=src, w=w, h=h))
                    assert status == expect[peer], (peer, src, status)
                    lat[(src, peer)].append(t)
        print(f"latency rounds done (load {loadavg()})", file=sys.stderr)

        rps = {"imgserv": [], "thumbor": []}
        # CPU per request: what each render costs, whatever share of the cores a round got
        # (thumbor's two processes do not always share wrk's four connections evenly).
        cpu_ms = {"imgserv": [], "thumbor": []}
        ports = {"imgserv": ip, "thumbor": tp}
        for rnd in range(args.rounds):
            for peer in (["imgserv", "thumbor"] if rnd % 2 == 0 else ["thumbor", "imgserv"]):
                fmt = paths[peer].replace("{src}", BIG)
                if peer == "imgserv":
                    start_imgserv()
                    Client(ip).get(paths[peer].format(src=BIG, w=100, h=100))
                server = procs[0] if peer == "imgserv" else procs[1]
                before = cpu_seconds(server.pid)
                r, n = wrk(ports[peer], fmt, peer, args.duration)
                rps[peer].append(r)
                cpu_ms[peer].append((cpu_seconds(server.pid) - before) / n * 1e3)
                print(f"round {rnd + 1} {peer} {r:.1f} req/s, {cpu_ms[peer][-1]:.1f} ms CPU a "
                      "request", file=sys.stderr)
    finally:
        for p in procs:
            if p is not None:
                # thumbor forks its --processes: stop its whole process group.
                if p.args[0] == args.thumbor:
                    os.killpg(p.pid, signal.SIGTERM)
                else:
                    p.terminate()
                p.wait()
        site.remove()

    print(f"\nimgserv (standalone, miss) against thumbor, medians of {args.requests} "
          f"interleaved requests (ms)")
    print(f"{'photo':<44} {'imgserv':>8} {'thumbor':>8} {'ratio':>6}")
    ratios = {}
    for src in photos:
        mi, mt = median(lat[(src, "imgserv")]), median(lat[(src, "thumbor")])
        ratios[src] = mi / mt
        print(f"{src:<44} {mi * 1e3:8.1f} {mt * 1e3:8.1f} {mi / mt:6.2f}")
    mri, mrt = median(rps["imgserv"]), median(rps["thumbor"])
    print(f"\nthroughput, wrk -t2 -c4 -d{args.duration}s, {BIG}, distinct boxes: "
          f"imgserv {mri:.1f} req/s, thumbor --processes 2 {mrt:.1f} req/s "
          f"(runs {rps['imgserv']} / {rps['thumbor']})")
    ci, ct = median(cpu_ms["imgserv"]), median(cpu_ms["thumbor"])
    print(f"CPU a request (user + system of the server's processes over the wrk runs): "
          f"imgserv {ci:.1f} ms, thumbor {ct:.1f} ms: {ct / ci:.2f}×, the throughput ratio when "
          "both keep both cores busy")
    worst = max(ratios.values())
    checks = [
        ("peer: imgserv latency ≤ 0.7× thumbor's on every photo", worst <= 0.7,
         f"worst {worst:.2f}"),
        ("peer: imgserv throughput ≥ 1.3× thumbor --processes 2", mri / mrt >= 1.3,
         f"{mri / mrt:.2f}×"),
    ]
    print()
    checked = report(checks)
    print(f"load average before {load_before}, after {loadavg()}")
    if args.json:
        write_json(args.json, {
            "latency_ms": {f"{s}|{p}": median(v) * 1e3 for (s, p), v in lat.items()},
            "ratios": ratios, "rps": rps, "cpu_ms": cpu_ms,
            "checks": checked})


if __name__ == "__main__":
    main()
