#!/usr/bin/env python3
"""People on the hot path (issue 12): what a permission check and a session cost a request,
with `wrk -t2 -c32` on loopback against one private nginx configured from the shipped snippets
(etc/nginx-fastcgi.conf, etc/nginx-cgi.conf), on `GET /api/images/{id}/meta` of an uploaded
image (`[object_cache] type = "memory"` in the FastCGI server, so its record, the caller's
principal and the effective permission are cache hits after the first request):

  fcgi-nocheck    imgserv-cgi --fastcgi with IMGSERV_BENCH_SKIP_PERMISSIONS=1 (a switch that
                  only `--features bench-fixtures` builds have): the route without its check
  fcgi            the same server program, the check on: anonymous, `public view` at the root
  fcgi-session    the same, with a session cookie (a viewer): the session's lookup and the check
  cgi             imgserv.cgi through fcgiwrap, anonymous (no cache across requests in CGI)
  cgi-session     the same with the session cookie: one indexed read more (the session)

Runs are interleaved; medians of req/s.

    bench/people.py --bin target/release [--rounds 3] [--duration 10] [--json out.json]

(--bin: the directory of imgserv-cgi, imgserv-upload and imgserv-admin, built with
--features bench-fixtures.)
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from benchlib import (Site, free_port, loadavg, median, report, wait_port, wait_unix,
                      write_json, write_nginx_conf)
from hits import get, snippet

PHOTO = "photo-nexus6p-exif-4032x3024.jpg"
USER, PASSWORD = "bench", "bench password 1"


def wrk(url, duration, headers=()):
    argv = ["wrk", "-t2", "-c32", f"-d{duration}s", "--latency"]
    for h in headers:
        argv += ["-H", h]
    p = subprocess.run(argv + [url], capture_output=True, text=True, check=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", p.stdout)[1])
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", p.stdout)
    p50 = re.search(r"50%\s+(\S+)", p.stdout)
    return rps, int(bad[1]) if bad else 0, p50[1] if p50 else "?"


def login(base):
    body = json.dumps({"user": USER, "password": PASSWORD}).encode()
    req = urllib.request.Request(f"{base}/cgi-bin/imgserv.cgi/api/session", data=body,
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        cookie = r.headers["Set-Cookie"].split(";", 1)[0]
        return cookie, json.load(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--json")
    args = ap.parse_args()
    bindir = Path(args.bin).resolve()
    imgserv, uploader, admin = (bindir / n for n in ("imgserv-cgi", "imgserv-upload",
                                                     "imgserv-admin"))
    site = Site([PHOTO], extra_config=(
        '[api]\npublic_reads = true\n'
        '[object_cache]\ntype = "memory"\n'))
    d = site.dir / "nginx"
    (d / "tmp").mkdir(parents=True)
    os.chmod(d, 0o777)
    procs = []
    try:
        log = open(d / "backends.log", "wb")
        spawn = lambda argv, env=None: subprocess.Popen(argv, stdout=log, stderr=log, env=env,
                                                        start_new_session=True)
        # The catalog first (the servers open it as it is): a viewer with a password, the photo.
        up = subprocess.run([uploader, "--config", site.config, site.originals / PHOTO],
                            capture_output=True, text=True)
        ids = re.findall(r"\b[0-9a-f]{40}\b", up.stdout)
        if up.returncode != 0 or not ids:
            sys.exit(f"people.py: imgserv-upload failed ({up.returncode}): {up.stderr[-500:]}")
        add = subprocess.run([admin, "--config", site.config, "user", "add", USER,
                              "--password-stdin", "--role", "viewer"],
                             input=PASSWORD + "\n", capture_output=True, text=True)
        if add.returncode != 0:
            sys.exit(f"people.py: imgserv-admin user add failed: {add.stderr[-500:]}")
        for p in (site.state, *site.state.iterdir()):
            os.chmod(p, 0o777 if p.is_dir() else 0o666)

        socks = {k: d / f"{k}.sock" for k in ("check", "nocheck")}
        env = {**os.environ, "IMGSERV_LOG": "warn"}
        procs.append(spawn([imgserv, "--fastcgi", socks["check"], "--config", site.config], env))
        procs.append(spawn([imgserv, "--fastcgi", socks["nocheck"], "--config", site.config],
                           {**env, "IMGSERV_BENCH_SKIP_PERMISSIONS": "1"}))
        procs.append(spawn(["fcgiwrap", "-c", "2", "-s", f"unix:{d / 'fcgiwrap.sock'}"]))
        for sock, p in zip([*socks.values(), d / "fcgiwrap.sock"], procs):
            wait_unix(sock, p)
        ports = {k: free_port() for k in ("check", "nocheck", "cgi")}
        fc = [("/var/cache/imgserv", str(site.cache))]
        servers = [
            snippet("nginx-fastcgi.conf", [
                ("listen 80;", f"listen 127.0.0.1:{ports[k]};"),
                ("unix:/run/imgserv/fcgi.sock", f"unix:{socks[k]}"),
                ("upstream imgserv {", f"upstream {k} {{"),
                ("fastcgi_pass imgserv;", f"fastcgi_pass {k};")] + fc)
            for k in ("check", "nocheck")
        ]
        servers.append(snippet("nginx-cgi.conf", [
            ("listen 80;", f"listen 127.0.0.1:{ports['cgi']};"),
            ("/usr/local/lib/cgi-bin/imgserv.cgi", str(imgserv)),
            ("/etc/imgserv/imgserv.toml", str(site.config)),
            ("unix:/run/fcgiwrap.socket", f"unix:{d / 'fcgiwrap.sock'}")] + fc + [
            (f"fastcgi_param IMGSERV_CONFIG {site.config};",
             f"fastcgi_param IMGSERV_CONFIG {site.config}; fastcgi_param IMGSERV_LOG warn;")]))
        write_nginx_conf(d, servers, "bench/people.py")
        nginx = spawn(["nginx", "-p", d, "-c", d / "nginx.conf", "-g", "daemon off;"])
        procs.insert(0, nginx)
        for port in ports.values():
            wait_port(port, nginx)

        base = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
        path = f"/cgi-bin/imgserv.cgi/api/images/{ids[0]}/meta"
        cookie, who = login(base["check"])
        assert who["user"] == USER, who
        rows = {
            "fcgi-nocheck": (base["nocheck"] + path, []),
            "fcgi": (base["check"] + path, []),
            "fcgi-session": (base["check"] + path, [f"Cookie: {cookie}"]),
            "cgi": (base["cgi"] + path, []),
            "cgi-session": (base["cgi"] + path, [f"Cookie: {cookie}"]),
        }
        for key, (url, headers) in rows.items():
            req = urllib.request.Request(url, headers=dict(h.split(": ", 1) for h in headers))
            with urllib.request.urlopen(req) as r:
                assert r.status == 200 and json.load(r)["id"] == ids[0], key
        load_before = loadavg()
        rps = {k: [] for k in rows}
        for rnd in range(args.rounds):
            for key, (url, headers) in rows.items():
                r, bad, lat = wrk(url, args.duration, headers)
                if bad:
                    sys.exit(f"people.py: {key}: {bad} responses were not 2xx/3xx")
                rps[key].append(r)
                print(f"round {rnd + 1} {key:<13} {r:9.0f} req/s  p50 {lat}", file=sys.stderr)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait()
        site.remove()

    m = {k: median(v) for k, v in rps.items()}
    print(f"\nPeople, GET meta, wrk -t2 -c32 -d{args.duration}s, medians of {args.rounds} "
          "interleaved runs")
    for k in rows:
        print(f"  {k:<13} {m[k]:9.0f} req/s   runs: {', '.join(f'{r:.0f}' for r in rps[k])}")
    checks = [
        ("FastCGI hit with a permission check ≥ 0.8× without", "fcgi", "fcgi-nocheck", 0.8),
        ("CGI request with a session ≥ 0.9× one without (one indexed read more)",
         "cgi-session", "cgi", 0.9),
    ]
    # A figure, not a target: the session's one indexed read (with the user's row and groups)
    # against a route whose other lookups are all object-cache hits.
    print(f"  a session in the FastCGI server: {m['fcgi-session'] / m['fcgi']:.2f}× the same "
          "request without one")
    print()
    checked = report([(what, m[a] / m[b] >= t, f"{m[a] / m[b]:.2f}×") for what, a, b, t in checks])
    print(f"load average before {load_before}, after {loadavg()}")
    if args.json:
        write_json(args.json, {"rps": rps, "median": m, "checks": checked})


if __name__ == "__main__":
    main()
