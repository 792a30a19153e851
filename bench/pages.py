#!/usr/bin/env python3
"""The dashboard's pages with 100,000 images in the catalog (issue 13): the server time of the
Browse, image and Search pages, p50, in the FastCGI server and through CGI, both behind one
private nginx configured from the shipped snippets (etc/nginx-fastcgi.conf,
etc/nginx-cgi.conf), logged in as an administrator (a session cookie); and an upload of a
12 MP JPEG through the Upload page against the same through `POST /api/images`.

The catalog: the photo uploaded for real, then 100,000 rows inserted with SQL as the upload
path leaves them (the layout of benches/browse.rs: `/photos/archive` holds 40,000,
`/photos/YYYY/MM` 500 each; "sunset" in one title of 10, `w<k>` in one of 1,000).

Latency: `wrk -t1 -c1 --latency` (one request at a time: a page's own time, nginx's included),
p50 of each run, medians of the runs. Targets: p50 ≤ 10 ms FastCGI, ≤ 30 ms CGI; keyset pages,
so page 200 costs what page 1 costs. Upload: distinct copies of the photo (a byte appended
after the JPEG's end), alternately through the page and REST, wall time of each request,
medians; the page must be no slower (≤ 1.1× REST, the spread of single uploads).

    bench/pages.py --bin target/release [--rounds 3] [--duration 5] [--uploads 7] [--json f]
"""

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from benchlib import (Site, free_port, loadavg, median, report, wait_port, wait_unix,
                      write_json, write_nginx_conf)
from hits import snippet

PHOTO = "photo-nexus6p-exif-4032x3024.jpg"
USER, PASSWORD = "bench", "bench password 1"
IMAGES, ARCHIVE = 100_000, 40_000


def fill(catalog):
    """100,000 rows in images and images_fts, as benches/browse.rs makes them."""
    db = sqlite3.connect(catalog)
    base = db.execute("SELECT coalesce(max(seq), 0) FROM images").fetchone()[0]
    rows, fts = [], []
    for n in range(IMAGES):
        seq = base + n + 1
        ident = f"{n:040x}"
        common = " sunset" if n % 10 == 0 else ""
        title = f"Photo {n:06} w{n % 1000}{common}"
        if n < ARCHIVE:
            cat = "/photos/archive"
        else:
            m = (n - ARCHIVE) % 120
            cat = f"/photos/{2015 + m // 12}/{m % 12 + 1:02}"
        created = 1_700_000_000_000 + n // 3
        meta = json.dumps({"title": title, "camera": "X100"})
        rows.append((seq, ident, created, created, cat, meta))
        fts.append((seq, cat, f"camera\nX100\ntitle\n{title}\n"))
    with db:
        db.executemany(
            "INSERT INTO images (seq, id, mime, ext, width, height, bytes, created, updated,"
            " owner, category, meta) VALUES (?, ?, 'image/jpeg', 'jpg', 4000, 3000, 2000000,"
            " ?, ?, 'ann', ?, ?)", rows)
        db.executemany("INSERT INTO images_fts (rowid, category, meta) VALUES (?, ?, ?)", fts)
    db.execute("ANALYZE")
    db.close()


def opener(cookie):
    o = urllib.request.build_opener()
    o.addheaders = [("Cookie", cookie)]
    return o


def login(base):
    body = urllib.parse.urlencode({"user": USER, "password": PASSWORD}).encode()

    class Keep(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    try:
        urllib.request.build_opener(Keep).open(f"{base}/admin/login", body)
    except urllib.error.HTTPError as e:
        if e.code != 303:
            raise
        return e.headers["Set-Cookie"].split(";", 1)[0]
    raise RuntimeError("the login did not redirect")


def page(o, url):
    with o.open(url) as r:
        assert r.status == 200, url
        return r.read().decode()


def wrk_p50(url, cookie, duration):
    p = subprocess.run(["wrk", "-t1", "-c1", f"-d{duration}s", "--latency", "-H",
                        f"Cookie: {cookie}", url], capture_output=True, text=True, check=True)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", p.stdout)
    if bad:
        sys.exit(f"pages.py: {url}: {bad[1]} responses were not 2xx/3xx")
    value, unit = re.search(r"50%\s+([\d.]+)(us|ms|s)", p.stdout).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def multipart(fields, filename, data):
    boundary = "benchB0undary"
    out = b""
    for k, v in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n"
                f"{v}\r\n").encode()
    out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{filename}\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    out += data + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", out


def upload_times(base, cookie, csrf, photo, count):
    """Alternating page and REST uploads of distinct copies; seconds of each."""
    times = {"page": [], "rest": []}
    o = opener(cookie)
    for i in range(count):
        for how in ("page", "rest"):
            data = photo + f"{how}{i}".encode()
            if how == "page":
                ctype, body = multipart({"csrf_token": csrf, "category": "/up"}, "p.jpg", data)
                req = urllib.request.Request(f"{base}/admin/upload", body,
                                             {"Content-Type": ctype})
                want = 200
            else:
                req = urllib.request.Request(f"{base}/api/images?category=/up", data,
                                             {"Content-Type": "image/jpeg",
                                              "X-CSRF-Token": csrf})
                want = 201
            start = time.perf_counter()
            with o.open(req) as r:
                r.read()
                assert r.status == want, (how, r.status)
            times[how].append(time.perf_counter() - start)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--uploads", type=int, default=7)
    ap.add_argument("--json")
    args = ap.parse_args()
    bindir = Path(args.bin).resolve()
    imgserv, uploader, admin = (bindir / n for n in ("imgserv-cgi", "imgserv-upload",
                                                     "imgserv-admin"))
    site = Site([PHOTO], extra_config=(
        '[api]\nmax_body_bytes = "64MB"\n[object_cache]\ntype = "memory"\n'))
    d = site.dir / "nginx"
    (d / "tmp").mkdir(parents=True)
    os.chmod(d, 0o777)
    procs = []
    try:
        log = open(d / "backends.log", "wb")
        spawn = lambda argv, env=None: subprocess.Popen(argv, stdout=log, stderr=log, env=env,
                                                        start_new_session=True)
        up = subprocess.run([uploader, "--config", site.config, "--category", "/photos/2020/01",
                             site.originals / PHOTO], capture_output=True, text=True)
        ids = re.findall(r"\b[0-9a-f]{40}\b", up.stdout)
        if up.returncode != 0 or not ids:
            sys.exit(f"pages.py: imgserv-upload failed ({up.returncode}): {up.stderr[-500:]}")
        add = subprocess.run([admin, "--config", site.config, "user", "add", USER,
                              "--password-stdin", "--role", "admin"],
                             input=PASSWORD + "\n", capture_output=True, text=True)
        if add.returncode != 0:
            sys.exit(f"pages.py: imgserv-admin user add failed: {add.stderr[-500:]}")
        fill(site.state / "catalog.sqlite")
        for p in (site.state, *site.state.iterdir()):
            os.chmod(p, 0o777 if p.is_dir() else 0o666)

        sock = d / "fcgi.sock"
        env = {**os.environ, "IMGSERV_LOG": "warn"}
        procs.append(spawn([imgserv, "--fastcgi", sock, "--config", site.config], env))
        procs.append(spawn(["fcgiwrap", "-c", "2", "-s", f"unix:{d / 'fcgiwrap.sock'}"]))
        for s, p in zip([sock, d / "fcgiwrap.sock"], procs):
            wait_unix(s, p)
        ports = {k: free_port() for k in ("fcgi", "cgi")}
        fc = [("/var/cache/imgserv", str(site.cache))]
        servers = [
            snippet("nginx-fastcgi.conf", [
                ("listen 80;", f"listen 127.0.0.1:{ports['fcgi']};"),
                ("unix:/run/imgserv/fcgi.sock", f"unix:{sock}")] + fc),
            snippet("nginx-cgi.conf", [
                ("listen 80;", f"listen 127.0.0.1:{ports['cgi']};"),
                ("/usr/local/lib/cgi-bin/imgserv.cgi", str(imgserv)),
                ("/etc/imgserv/imgserv.toml", str(site.config)),
                ("unix:/run/fcgiwrap.socket", f"unix:{d / 'fcgiwrap.sock'}")] + fc + [
                (f"fastcgi_param IMGSERV_CONFIG {site.config};",
                 f"fastcgi_param IMGSERV_CONFIG {site.config}; "
                 "fastcgi_param IMGSERV_LOG warn;")]),
        ]
        write_nginx_conf(d, servers, "bench/pages.py")
        nginx = spawn(["nginx", "-p", d, "-c", d / "nginx.conf", "-g", "daemon off;"])
        procs.insert(0, nginx)
        for port in ports.values():
            wait_port(port, nginx)

        script = {k: f"http://127.0.0.1:{p}/cgi-bin/imgserv.cgi" for k, p in ports.items()}
        cookie = login(script["fcgi"])
        o = opener(cookie)
        # Page 200 of everything below /photos: follow `next` 199 times.
        url = f"{script['fcgi']}/admin/browse?category=/photos"
        for _ in range(199):
            nxt = re.search(r'href="([^"]+)" rel="next"', page(o, url))
            url = f"{script['fcgi']}/admin/" + nxt[1].replace("&#38;", "&").replace("&amp;", "&")
        deep = url.split("/admin/", 1)[1]
        cases = {
            "browse /photos and below, page 1": "browse?category=/photos",
            "browse /photos and below, page 200": deep,
            "browse /photos/archive (40,000), by name": "browse?category=/photos/archive&below=0&order=name",
            "image page": f"image/{ids[0]}",
            "search, a word in 100 images": "search?q=w123&category=/photos",
            "search, a word in 10,000 images": "search?q=sunset&category=/photos",
            "search, a word in every image": "search?q=photo&category=/photos",
        }
        for path in cases.values():
            for s in script.values():
                page(o, f"{s}/admin/{path}")
        load_before = loadavg()
        p50 = {(c, k): [] for c in cases for k in script}
        for rnd in range(args.rounds):
            for c, path in cases.items():
                for k, s in script.items():
                    ms = wrk_p50(f"{s}/admin/{path}", cookie, args.duration)
                    p50[(c, k)].append(ms)
                    print(f"round {rnd + 1} {k:<4} {c:<45} p50 {ms:7.2f} ms", file=sys.stderr)
        home = page(o, f"{script['fcgi']}/admin/upload")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', home)[1]
        photo = (site.originals / PHOTO).read_bytes()
        uploads = upload_times(script["fcgi"], cookie, csrf, photo, args.uploads)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait()
        site.remove()

    m = {key: median(v) for key, v in p50.items()}
    print(f"\nDashboard pages at {IMAGES:,} images, wrk -t1 -c1 -d{args.duration}s, p50 "
          f"(medians of {args.rounds} runs)")
    print(f"  {'page':<45} {'FastCGI':>9} {'CGI':>9}")
    for c in cases:
        print(f"  {c:<45} {m[(c, 'fcgi')]:7.2f} ms {m[(c, 'cgi')]:7.2f} ms")
    up = {k: median(v) for k, v in uploads.items()}
    print(f"  upload of a 12 MP JPEG (FastCGI), medians of {args.uploads}: page "
          f"{up['page'] * 1000:.0f} ms, REST {up['rest'] * 1000:.0f} ms")
    checks = []
    for c in cases:
        checks.append((f"{c}: FastCGI p50 ≤ 10 ms", m[(c, "fcgi")] <= 10,
                       f"{m[(c, 'fcgi')]:.2f} ms"))
        checks.append((f"{c}: CGI p50 ≤ 30 ms", m[(c, "cgi")] <= 30,
                       f"{m[(c, 'cgi')]:.2f} ms"))
    checks.append(("upload through the page ≤ 1.1× REST", up["page"] <= 1.1 * up["rest"],
                   f"{up['page'] / up['rest']:.2f}×"))
    print()
    checked = report(checks)
    print(f"load average before {load_before}, after {loadavg()}")
    if args.json:
        write_json(args.json, {"p50_ms": {f"{c} / {k}": v for (c, k), v in p50.items()},
                               "uploads_s": uploads, "checks": checked})


if __name__ == "__main__":
    main()
