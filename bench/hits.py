#!/usr/bin/env python3
"""Hits side by side (issue 5): `wrk -t2 -c32 -d10s` on loopback against one private nginx
configured from the shipped snippets (etc/nginx-fastcgi.conf, etc/nginx-cgi.conf), serving

  static     a small JPEG variant from the cache directory (nginx alone)
  404-2nd    the 404 handler's second hit: /cache/<id>/400/300.jpg of an uploaded original
             (imgserv-upload), requested once before the runs, when imgserv rendered it and
             left the file there; from then on nginx serves that file (try_files), so this is
             1.0× static by construction. Its log must show no further 404 handler call.
  fastcgi    imgserv-cgi --fastcgi (fastcgi_pass, kept-alive), a cache hit
  fcgi-nop   bench-nop-fastcgi: the same FastCGI layer, a handler that only redirects
  cgi        imgserv.cgi through fcgiwrap, a cache hit
  cgi-nop    bench-nop-cgi through fcgiwrap: prints a redirect and exits

With --log-compare, two more rows measure the log line a request costs (src/access.rs: one at
the default level, info; none for a good request at warn):
  fastcgi-warn  a second imgserv-cgi --fastcgi, IMGSERV_LOG=warn (the first logs at info)
  cgi-warn      imgserv.cgi through fcgiwrap with `fastcgi_param IMGSERV_LOG warn;` (the cgi
                row logs at the default level into fcgiwrap's stderr, a file here; with
                --fcgiwrap-stderr, fcgiwrap runs with -f, as Debian's fcgiwrap.service does,
                and sends it through FastCGI into nginx's error log)
--rows static,cgi,… runs only those rows (the setup, with the first 404 handler call, is
the same).

Runs are interleaved (static, 404-2nd, fastcgi, fcgi-nop, cgi, cgi-nop, static, …); medians
of req/s.
After the runs it reads the index: the `hits` column counts the hit path's writes (one at most
per [cache] access_interval).

    bench/hits.py --bin target/release [--rounds 3] [--duration 10] [--log-compare]
                  [--fcgiwrap-stderr] [--rows ROW,…] [--json out.json]

(--bin: the directory of imgserv-cgi, imgserv-upload, bench-nop-cgi and bench-nop-fastcgi.)
"""

import argparse
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

from benchlib import (REPO, Site, free_port, loadavg, median, report, wait_port, wait_unix,
                      write_json, write_nginx_conf)

PHOTO = "photo-nexus6p-exif-4032x3024.jpg"
QUERY = f"src={PHOTO}&width=400&height=300"
# The same box for the 404 handler's URL, so that both rows serve a file of about one size.
BOX404 = "400/300.jpg"


def snippet(name, subs):
    text = (REPO / "etc" / name).read_text()
    for old, new in subs:
        if old not in text:
            sys.exit(f"hits.py: {old!r} is not in etc/{name} any more")
        text = text.replace(old, new)
    return text


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def get(url):
    opener = urllib.request.build_opener(NoRedirect)
    try:
        r = opener.open(url)
        return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def wrk(url, threads, conns, duration):
    p = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, check=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", p.stdout)[1])
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", p.stdout)
    errors = re.search(r"Socket errors:.*", p.stdout)
    p50 = re.search(r"50%\s+(\S+)", p.stdout)
    return rps, int(bad[1]) if bad else 0, errors[0] if errors else "", p50[1] if p50 else "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True,
                    help="directory of imgserv-cgi, imgserv-upload and bench-nop-*")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--upstream-keepalive", type=int,
                    help="replace the snippet's `keepalive N;` (an experiment; both FastCGI sides)")
    ap.add_argument("--log-compare", action="store_true",
                    help="add the fastcgi-warn and cgi-warn rows (IMGSERV_LOG=warn)")
    ap.add_argument("--fcgiwrap-stderr", action="store_true",
                    help="fcgiwrap -f: the CGI's stderr into nginx's error log (Debian's unit)")
    ap.add_argument("--rows", help="comma-separated rows to run (default: all)")
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = ["static", "404-2nd", "fastcgi", "fastcgi-warn", "fcgi-nop", "cgi", "cgi-warn",
            "cgi-nop"]
    if not args.log_compare:
        rows = [r for r in rows if not r.endswith("-warn")]
    if args.rows:
        wanted = args.rows.split(",")
        if unknown := [r for r in wanted if r not in rows]:
            sys.exit(f"hits.py: unknown rows {unknown} (rows: {', '.join(rows)})")
        rows = [r for r in rows if r in wanted]
    bindir = Path(args.bin).resolve()
    imgserv, nop_cgi, nop_fcgi, uploader = (
        bindir / n for n in ("imgserv-cgi", "bench-nop-cgi", "bench-nop-fastcgi", "imgserv-upload"))
    site = Site([PHOTO])
    nginx_dir = site.dir / "nginx"
    (nginx_dir / "tmp").mkdir(parents=True)
    os.chmod(nginx_dir, 0o777)
    s_fcgi, s_nop, s_wrap, s_quiet = (
        nginx_dir / n for n in ("imgserv.sock", "nop.sock", "fcgiwrap.sock", "quiet.sock"))
    procs = []
    try:
        log = open(nginx_dir / "backends.log", "wb")
        # Own sessions: fcgiwrap forks its children, and every process here is stopped by group.
        spawn = lambda argv, env=None: subprocess.Popen(argv, stdout=log, stderr=log, env=env,
                                                        start_new_session=True)
        # At info, imgserv logs every 404 handler call (hits are at debug): the 404-2nd proof.
        procs.append(spawn([imgserv, "--fastcgi", s_fcgi, "--config", site.config],
                           env={**os.environ, "IMGSERV_LOG": "info"}))
        procs.append(spawn([nop_fcgi, s_nop]))
        # Two children: one a core. The same fcgiwrap serves both CGI programs.
        procs.append(spawn(["fcgiwrap", "-c", "2", *(["-f"] if args.fcgiwrap_stderr else []),
                            "-s", f"unix:{s_wrap}"]))
        socks = [s_fcgi, s_nop, s_wrap]
        if args.log_compare:
            procs.append(spawn([imgserv, "--fastcgi", s_quiet, "--config", site.config],
                               env={**os.environ, "IMGSERV_LOG": "warn"}))
            socks.append(s_quiet)
        for sock, p in zip(socks, procs):
            wait_unix(sock, p)
        served_rows = ["fastcgi", "fcgi-nop", "cgi", "cgi-nop"]
        if args.log_compare:
            served_rows += ["fastcgi-warn", "cgi-warn"]
        ports = {k: free_port() for k in served_rows}
        fc = [("/var/cache/imgserv", str(site.cache))]
        shipped_ka = re.search(r"keepalive \d+;", (REPO / "etc" / "nginx-fastcgi.conf").read_text())
        ka = [(shipped_ka[0], f"keepalive {args.upstream_keepalive};")] \
            if args.upstream_keepalive and shipped_ka else []
        servers = [
            snippet("nginx-fastcgi.conf", [("listen 80;", f"listen 127.0.0.1:{ports['fastcgi']};"),
                                           ("unix:/run/imgserv/fcgi.sock", f"unix:{s_fcgi}")] + fc + ka),
            snippet("nginx-fastcgi.conf", [("listen 80;", f"listen 127.0.0.1:{ports['fcgi-nop']};"),
                                           ("unix:/run/imgserv/fcgi.sock", f"unix:{s_nop}"),
                                           ("upstream imgserv {", "upstream nop {"),
                                           ("fastcgi_pass imgserv;", "fastcgi_pass nop;")] + fc + ka),
        ]
        cgi_servers = [("cgi", imgserv, []), ("cgi-nop", nop_cgi, [])]
        if args.log_compare:
            servers.append(snippet("nginx-fastcgi.conf", [
                ("listen 80;", f"listen 127.0.0.1:{ports['fastcgi-warn']};"),
                ("unix:/run/imgserv/fcgi.sock", f"unix:{s_quiet}"),
                ("upstream imgserv {", "upstream quiet {"),
                ("fastcgi_pass imgserv;", "fastcgi_pass quiet;")] + fc + ka))
            # Replaces the parameter in both locations of the snippet.
            quiet = (f"fastcgi_param IMGSERV_CONFIG {site.config};",
                     f"fastcgi_param IMGSERV_CONFIG {site.config}; "
                     "fastcgi_param IMGSERV_LOG warn;")
            cgi_servers.append(("cgi-warn", imgserv, [quiet]))
        for key, program, extra in cgi_servers:
            servers.append(snippet("nginx-cgi.conf", [
                ("listen 80;", f"listen 127.0.0.1:{ports[key]};"),
                ("/usr/local/lib/cgi-bin/imgserv.cgi", str(program)),
                ("/etc/imgserv/imgserv.toml", str(site.config)),
                ("unix:/run/fcgiwrap.socket", f"unix:{s_wrap}")] + fc + extra))
        d = nginx_dir
        write_nginx_conf(d, servers, "bench/hits.py")
        nginx = spawn(["nginx", "-p", d, "-c", d / "nginx.conf", "-g", "daemon off;"])
        procs.insert(0, nginx)
        for port in ports.values():
            wait_port(port, nginx)

        # The first request renders (a miss); the bench then measures hits of that variant.
        base = f"http://127.0.0.1:{ports['fastcgi']}"
        status, headers, _ = get(f"{base}/cgi-bin/imgserv.cgi?{QUERY}")
        assert status == 302, status
        location = headers["Location"]
        static = location if location.startswith("http") else base + location
        status, _, body = get(static)
        assert status == 200 and body[:2] == b"\xff\xd8", status
        urls = {"static": static, "fastcgi": f"{base}/cgi-bin/imgserv.cgi?{QUERY}"}
        for key in served_rows[1:]:
            urls[key] = f"http://127.0.0.1:{ports[key]}/cgi-bin/imgserv.cgi?{QUERY}"
        for key in served_rows[1:]:
            status, headers, _ = get(urls[key])
            assert status == 302, (key, status)

        # The 404 handler: upload the photo (as imgserv-upload does on a real site), then the
        # first request for /cache/<id>/400/300.jpg runs imgserv, which renders, writes the file
        # where nginx looked and answers 200 with it. Every later request is nginx alone.
        up = subprocess.run([uploader, "--config", site.config, site.originals / PHOTO],
                            capture_output=True, text=True)
        ids = re.findall(r"\b[0-9a-f]{40}\b", up.stdout)
        if up.returncode != 0 or not ids:
            sys.exit(f"hits.py: imgserv-upload failed ({up.returncode}): {up.stderr[-500:]}")
        rel404 = f"{ids[0]}/{BOX404}"
        file404 = site.cache / rel404
        backend_log = nginx_dir / "backends.log"
        handler_calls = lambda: backend_log.read_text(errors="replace").count("404 handler")
        assert not file404.exists() and handler_calls() == 0
        url404 = f"{base}/cache/{rel404}"
        status, headers, body404 = get(url404)
        assert status == 200 and body404[:2] == b"\xff\xd8", (url404, status, body404[:200])
        assert file404.is_file() and file404.read_bytes() == body404, "no file where nginx looks"
        calls_first = handler_calls()
        assert calls_first == 1, f"{calls_first} 404 handler calls for the first request"
        stat404 = file404.stat()
        urls = {"404-2nd": url404, **urls}
        urls = {k: urls[k] for k in rows}
        print(f"static file: {len(body)} bytes, 404 handler file: {len(body404)} bytes; "
              f"load before {loadavg()}", file=sys.stderr)

        load_before = loadavg()
        rps = {k: [] for k in urls}
        p50 = {k: [] for k in urls}
        for rnd in range(args.rounds):
            for key, url in urls.items():
                r, bad, errs, lat = wrk(url, 2, 32, args.duration)
                if bad:
                    sys.exit(f"hits.py: {key}: {bad} responses were not 2xx/3xx")
                rps[key].append(r)
                p50[key].append(lat)
                print(f"round {rnd + 1} {key:<9} {r:9.0f} req/s  p50 {lat}  {errs}",
                      file=sys.stderr)
        # Proof that imgserv did not answer one of the 404-2nd requests: no new handler call
        # in its log, the same file (inode, mtime) as after the first request.
        calls_after = handler_calls()
        st = file404.stat()
        same_file = (st.st_ino, st.st_mtime_ns) == (stat404.st_ino, stat404.st_mtime_ns)
        db = sqlite3.connect(site.state / "cache.sqlite")
        writes = db.execute("SELECT sum(hits) FROM variants").fetchone()[0]
        # Where the request lines went: the FastCGI servers' stderr (backends.log), and the
        # CGI's through fcgiwrap into nginx's error log, whose lines name the port (host: …).
        lines = {"fastcgi and fcgiwrap (backends.log)": backend_log.read_text(errors="replace")
                 .count("route=resize")}
        error_log = (nginx_dir / "error.log").read_text(errors="replace").splitlines()
        for key in ("cgi", "cgi-warn"):
            if key in ports and args.fcgiwrap_stderr:
                lines[f"{key} (nginx error.log)"] = sum(
                    "route=resize" in ln and f":{ports[key]}\"" in ln for ln in error_log)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait()
        site.remove()

    m = {k: median(v) for k, v in rps.items()}
    print(f"\nHits, wrk -t2 -c32 -d{args.duration}s, medians of {args.rounds} interleaved runs")
    for k in urls:
        print(f"  {k:<9} {m[k]:9.0f} req/s   runs: {', '.join(f'{r:.0f}' for r in rps[k])}")
    hits404 = sum(rps.get("404-2nd", [])) * args.duration
    served = sum(sum(v) * args.duration for k, v in rps.items()
                 if k in ("fastcgi", "cgi", "fastcgi-warn", "cgi-warn"))
    ratios = [
        ("hit: FastCGI ≥ 0.8× do-nothing FastCGI responder", "fastcgi", "fcgi-nop", 0.8),
        ("hit: FastCGI ≥ 0.35× nginx serving a small static JPEG", "fastcgi", "static", 0.35),
        ("hit: CGI ≥ 0.6× do-nothing CGI", "cgi", "cgi-nop", 0.6),
        ("404 handler, second hit ≥ 0.9× static (nginx serving a file: 1.0× by construction)",
         "404-2nd", "static", 0.9),
    ]
    untouched = calls_after == calls_first and same_file
    checks = [(what, m[a] / m[b] >= target, f"{m[a] / m[b]:.2f}×")
              for what, a, b, target in ratios if a in m and b in m]
    if "404-2nd" in m:
        checks.append((
            f"404 handler, second hit: imgserv not invoked during ~{hits404:.0f} requests",
            untouched,
            f"404 handler log lines {calls_first} before the runs, {calls_after} after; "
            f"file {'unchanged' if same_file else 'REWRITTEN'}"))
    for row in ("fastcgi", "cgi"):
        if row in m and f"{row}-warn" in m:
            paired = median([a / b for a, b in zip(rps[row], rps[f"{row}-warn"])])
            print(f"  {row}: a log line a request (info) against none (warn): "
                  f"{m[row] / m[row + '-warn']:.3f}× (median of the rounds' ratios "
                  f"{paired:.3f}×)")
    print()
    checked = report(checks)
    print(f"       index writes during ~{served:.0f} hits: {writes} (last_access refreshes, "
          f"at most one a variant per access_interval)")
    print("       request log lines: " + ", ".join(f"{k} {n}" for k, n in lines.items()))
    print(f"load average before {load_before}, after {loadavg()}")
    if args.json:
        write_json(args.json, {
            "rps": rps, "median": m, "p50": p50, "index_writes": writes, "checks": checked,
            "request_log_lines": lines,
            "handler404": {"url_path": f"/cache/{rel404}", "bytes": len(body404),
                           "static_bytes": len(body), "calls_before_runs": calls_first,
                           "calls_after_runs": calls_after, "file_unchanged": same_file},
        })


if __name__ == "__main__":
    main()
