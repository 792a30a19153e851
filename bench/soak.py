#!/usr/bin/env python3
"""make soak: mixed traffic through a private nginx to `imgserv-cgi --fastcgi` for a while
(default 10 minutes), then PASS/FAIL on: no 5xx and no broken connections, bad inputs all
refused with a 4xx, the FastCGI server's RSS flat (the last window within 10 % of the
second), the cache under [cache] max_bytes (by the index and by du), `imgserv-admin fsck`
clean at the end. Standard library only; requests go to 127.0.0.1 only.

The traffic, from --clients threads, each request drawn at random by weight:
  hit       the redirector on a few (original, box) pairs asked again and again, then the
            variant it redirects to, from nginx
  miss      the redirector on a random box of a random original, then the variant
  handler   a variant of an uploaded original by its 404-handler URL /cache/<id>/<w>/<h>.jpg
            (nginx finds no file and asks imgserv; a box not served 301s to the one that is)
  upload    a signed POST /api/images (v2 signatures, imgserv-signing(7)): fixtures, and PNGs
            made distinct by a tEXt chunk so the store grows and new ids keep coming
  delete    a signed DELETE of an uploaded original or of one of its variants
  bad       bad parameters, path traversal, a missing or corrupt original (tests/fixtures
            bad-*), corrupt uploads, unsigned and wrongly signed writes, replayed writes,
            unsigned reads, 404-handler URLs of nothing

Every process it starts (nginx, the FastCGI server) is stopped by PID on the way out,
failures and Ctrl-C included."""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import FIXTURES, REPO, free_port, loadavg, report, wait_port, write_json  # noqa: E402

SCRIPT = "/cgi-bin/imgserv.cgi"

# Originals for the redirector: photos of several sizes and formats (the big one makes the
# misses that cost, the small ones keep the rate up), and corrupt files as bad inputs.
ORIGINALS = [
    "photo-rocket-640x427.jpg",
    "photo-chelsea-cat-451x300.png",
    "photo-hubble-deep-field-1000x872.jpg",
    "jpeg-progressive-cat-320x240.jpg",
    "photo-astronaut-512x512.png",
    "photo-analogpattern-2880x2160.jpg",
    "exif-orient-6.jpg",
    "webp-lossy-hopper-128x128.webp",
    "gif-static-hopper-128x128.gif",
    "png-palette-trns-tbbn3p08.png",
]
CORRUPT = [
    "bad-jpeg-corrupt-huffman-table.jpg",
    "bad-jpeg-fuzz-bad-sof.jpg",
    "bad-png-crc-ihdr.png",
    "bad-png-missing-idat.png",
    "bad-truncated-before-scan.jpg",
    "bad-zero-bytes.jpg",
    "bad-text-named.jpg",
    "bad-html-named.jpg",
    "bad-gif-zero-width.gif",
]
UPLOADS = [
    "photo-rocket-640x427.jpg",
    "jpeg-progressive-cat-320x240.jpg",
    "webp-lossy-alpha-100x100.webp",
    "gif-static-hopper-128x128.gif",
]
# PNGs re-uploaded with a tEXt chunk of their own: new bytes, new id, same picture.
DISTINCT = [
    "photo-hopper-128x128.png",
    "photo-chelsea-cat-451x300.png",
    "photo-astronaut-512x512.png",
]
HOT = [(name, w, h) for name in ORIGINALS[:4] for (w, h) in ((100, 100), (300, 200))]
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
}

WEIGHTS = {"hit": 30, "miss": 25, "handler": 15, "upload": 8, "delete": 6, "bad": 16}
# Statuses each kind may get besides 5xx-free success. A 404 on an uploaded original's URL
# is a race with a delete from another client thread; a 404 after a redirect is a variant
# evicted between the 302 and the GET.
EXPECTED = {
    "hit": {302, 200, 404},
    "miss": {302, 200, 404},
    "handler": {200, 301, 404},
    "upload": {200, 201},
    "delete": {204, 404},
}


# --- imgserv-signing(7), version 2 -------------------------------------------------------

UNRESERVED = "-._~"


def canonical_path(path):
    return quote(unquote_to_bytes(path), safe="/" + UNRESERVED) or "/"


def canonical_query(query):
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = unquote_to_bytes(name.replace("+", " "))
        value = unquote_to_bytes(value.replace("+", " "))
        pairs.append((quote(name, safe=UNRESERVED), quote(value, safe=UNRESERVED)))
    return "&".join(n + "=" + v for n, v in sorted(pairs))


def sign(key_id, secret, method, path, query, body, content_type=""):
    """The headers of a v2-signed request; path below the script, query as sent."""
    scheme = "IMGSERV2-HMAC-SHA256"
    date = str(int(time.time()))
    content = hashlib.sha256(body).hexdigest()
    text = "\n".join(
        [scheme, method, canonical_path(path), canonical_query(query), date, content_type, content]
    )
    mac = hmac.new(secret.encode("ascii"), text.encode("utf-8"), hashlib.sha256).hexdigest()
    headers = {
        "X-Imgserv-Date": date,
        "X-Imgserv-Content-SHA256": content,
        "Authorization": f"{scheme} Credential={key_id}, Signature={mac}",
    }
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def with_text_chunk(png, text):
    """The PNG with a tEXt chunk after IHDR (new bytes, same picture)."""
    data = b"Comment\0" + text.encode()
    chunk = len(data).to_bytes(4, "big") + b"tEXt" + data
    chunk += zlib.crc32(chunk[4:]).to_bytes(4, "big")
    ihdr_end = 8 + 8 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


# --- the site: nginx + imgserv-cgi --fastcgi ---------------------------------------------


class Processes:
    """Children by PID, stopped in reverse order of start: TERM, then KILL after 10 s."""

    def __init__(self):
        self.children = []

    def start(self, name, argv, log):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.children.append((name, p))
        return p

    def stop(self):
        for name, p in reversed(self.children):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()
        self.children.clear()


def nginx_conf(d, port, cache, socket):
    snippet = (REPO / "etc" / "nginx-fastcgi.conf").read_text()
    # As tests/it/support/nginx.rs: the shipped file, with our port, cache and socket.
    for old, new in (
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("/var/cache/imgserv", str(cache)),
        ("unix:/run/imgserv/fcgi.sock", f"unix:{socket}"),
    ):
        if old not in snippet:
            raise RuntimeError(f"etc/nginx-fastcgi.conf no longer holds {old!r}")
        snippet = snippet.replace(old, new)
    (d / "server.conf").write_text(snippet)
    user = "user root;\n" if os.geteuid() == 0 else ""
    (d / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n"
        "events { worker_connections 512; }\nhttp {\n"
        "    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n"
        f"    access_log {d}/access.log;\n    root {d}/html;\n"
        + "".join(
            f"    {k}_temp_path {d}/tmp/{k};\n" for k in ("fastcgi", "proxy", "scgi", "uwsgi")
        )
        + f"    client_body_temp_path {d}/tmp/body;\n    include {d}/server.conf;\n}}\n"
    )


def setup(args, procs):
    root = Path(tempfile.mkdtemp(prefix="imgserv-soak-", dir="/tmp"))
    os.chmod(root, 0o755)
    site = {k: root / k for k in ("originals", "cache", "state", "store", "nginx")}
    for d in site.values():
        d.mkdir()
    for d in ("html", "tmp"):
        (site["nginx"] / d).mkdir()
    shutil.copy("/etc/nginx/fastcgi_params", site["nginx"] / "fastcgi_params")
    for name in ORIGINALS + CORRUPT:
        shutil.copy(FIXTURES / name, site["originals"] / name)
    config = root / "imgserv.toml"
    config.write_text(
        f'[originals]\nroot = "{site["originals"]}"\n'
        f'[cache]\ndir = "{site["cache"]}"\nurl = "/cache"\nmax_bytes = {args.max_bytes}\n'
        f'[state]\ndir = "{site["state"]}"\n'
        f'[store]\ndir = "{site["store"]}"\n'
        '[metrics]\nenabled = true\nallow = ["127.0.0.1"]\n'
    )
    admin = [str(args.bin / "imgserv-admin"), "--config", str(config)]
    subprocess.run(admin + ["user", "add", "soak"], check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run(
        admin + ["key", "add", "soak", "--rights", "read,write,delete"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    key = (fields["key id"].strip(), fields["secret"].strip())

    socket = site["nginx"] / "fcgi.sock"
    log = open(root / "imgserv.log", "wb")
    server = procs.start(
        "imgserv-cgi",
        [str(args.bin / "imgserv-cgi"), "--fastcgi", str(socket), "--config", str(config)],
        log,
    )
    deadline = time.monotonic() + 30
    while not socket.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"imgserv-cgi --fastcgi did not start; see {root}/imgserv.log")
        time.sleep(0.05)
    port = free_port()
    nginx_conf(site["nginx"], port, site["cache"], socket)
    nginx = procs.start(
        "nginx",
        [
            "nginx",
            "-p",
            str(site["nginx"]),
            "-c",
            str(site["nginx"] / "nginx.conf"),
            "-g",
            "daemon off;",
        ],
        open(site["nginx"] / "stderr.log", "wb"),
    )
    wait_port(port, nginx)
    return root, site, config, admin, key, port, server


# --- the load ---------------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = {}  # kind -> count of HTTP requests
        self.statuses = {}  # kind -> {status: count}
        self.errors = []  # (kind, what) transport errors
        self.server_errors = []  # (kind, method, url, status, body)
        self.unexpected = []  # (kind, method, url, status, body), first few
        self.unexpected_count = {}
        self.latency = {}  # kind -> [seconds]

    def record(self, kind, method, url, status, body, seconds, expected):
        with self.lock:
            self.requests[kind] = self.requests.get(kind, 0) + 1
            per = self.statuses.setdefault(kind, {})
            per[status] = per.get(status, 0) + 1
            self.latency.setdefault(kind, []).append(seconds)
            snippet = body[:200].decode("utf-8", "replace")
            if status >= 500:
                self.server_errors.append((kind, method, url, status, snippet))
            elif not expected(status):
                self.unexpected_count[kind] = self.unexpected_count.get(kind, 0) + 1
                if len(self.unexpected) < 50:
                    self.unexpected.append((kind, method, url, status, snippet))


class Client:
    """One keep-alive connection to nginx; a new one after any transport error."""

    def __init__(self, port, stats):
        self.port = port
        self.stats = stats
        self.conn = None

    def request(self, kind, method, url, body=b"", headers=None, expected=None):
        if expected is None:
            allowed = EXPECTED[kind]
            expected = allowed.__contains__
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            start = time.monotonic()
            try:
                self.conn.request(method, url, body=body or None, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                # nginx closes an idle kept-alive connection after keepalive_timeout: a fresh
                # request that fails on a reused connection is retried once on a new one.
                self.conn.close()
                self.conn = None
                if attempt == 1 and isinstance(
                    e, (http.client.RemoteDisconnected, BrokenPipeError)
                ):
                    continue
                with self.stats.lock:
                    self.stats.errors.append((kind, f"{method} {url}: {e!r}"))
                return None, None, b""
            except OSError as e:
                self.conn.close()
                self.conn = None
                with self.stats.lock:
                    self.stats.errors.append((kind, f"{method} {url}: {e!r}"))
                return None, None, b""
            self.stats.record(kind, method, url, r.status, data, time.monotonic() - start, expected)
            return r.status, r.headers, data
        return None, None, b""


class Load:
    def __init__(self, port, key, stats, seed):
        self.port = port
        self.key = key
        self.stats = stats
        self.ids = []  # (id, extension) of uploaded originals not deleted yet
        self.ids_lock = threading.Lock()
        self.counter = 0
        self.seed = seed
        self.blobs = {name: (FIXTURES / name).read_bytes() for name in UPLOADS + DISTINCT + CORRUPT}

    def next_n(self):
        with self.ids_lock:
            self.counter += 1
            return self.counter

    def signed(
        self, client, kind, method, path, query="", body=b"", content_type="", expected=None
    ):
        headers = sign(*self.key, method, path, query, body, content_type)
        url = SCRIPT + path + ("?" + query if query else "")
        return client.request(kind, method, url, body, headers, expected), headers

    def follow(self, client, kind, status, headers):
        if status == 302:
            location = headers.get("Location", "")
            if location.startswith("/cache/"):
                client.request(kind, "GET", location)

    def redirector(self, client, kind, src, w, h):
        status, headers, _ = client.request(
            kind, "GET", f"{SCRIPT}?src={quote(src)}&width={w}&height={h}"
        )
        self.follow(client, kind, status, headers)

    def hit(self, client, rnd):
        self.redirector(client, "hit", *rnd.choice(HOT))

    def miss(self, client, rnd):
        self.redirector(
            client, "miss", rnd.choice(ORIGINALS), rnd.randrange(20, 1600), rnd.randrange(20, 1600)
        )

    def handler(self, client, rnd):
        with self.ids_lock:
            image = rnd.choice(self.ids) if self.ids else None
        if image is None:
            return self.upload(client, rnd)
        image, ext = image
        url = f"/cache/{image}/{rnd.randrange(20, 800)}/{rnd.randrange(20, 800)}.{ext}"
        status, headers, _ = client.request("handler", "GET", url)
        if status == 301:
            location = headers.get("Location", "")
            if location.startswith("/cache/"):
                client.request("handler", "GET", location)

    def upload(self, client, rnd):
        n = self.next_n()
        if rnd.random() < 0.5:
            name = rnd.choice(DISTINCT)
            body = with_text_chunk(self.blobs[name], f"soak {self.seed} {n}")
        else:
            name = rnd.choice(UPLOADS)
            body = self.blobs[name]
        ctype = CONTENT_TYPES[Path(name).suffix]
        # The query makes every write's signature its own (two identical writes in one second
        # would be one replayed).
        (status, _, data), _ = self.signed(
            client, "upload", "POST", "/api/images", f"category=/soak&n={n}", body, ctype
        )
        if status in (200, 201):
            self.uploaded(data)

    def uploaded(self, data):
        """Remembers an upload's (id, extension) from its JSON."""
        row = json.loads(data)
        image = (row["id"], EXTENSIONS[row["mime"]])
        with self.ids_lock:
            if image not in self.ids:
                self.ids.append(image)

    def delete(self, client, rnd):
        with self.ids_lock:
            # Keep a few originals around for the 404 handler.
            if len(self.ids) < 5:
                image = None
            elif rnd.random() < 0.5:
                image = self.ids.pop(rnd.randrange(len(self.ids)))[0]
                path = f"/api/images/{image}"
            else:
                image = rnd.choice(self.ids)[0]
                path = f"/api/images/{image}/variants/{rnd.randrange(50, 800)}x{rnd.randrange(50, 800)}"
        if image is None:
            return self.upload(client, rnd)
        self.signed(client, "delete", "DELETE", path, f"n={self.next_n()}")

    def bad(self, client, rnd):
        refused = lambda s: 400 <= s < 500  # noqa: E731
        case = rnd.randrange(14)
        src = rnd.choice(ORIGINALS)
        if case == 0:
            q = rnd.choice(
                [
                    "width=abc&height=100",
                    "width=-5&height=100",
                    "width=0&height=0",
                    "height=100",
                    "width=100&height=abc",
                    "width=1e9&height=1",
                ]
            )
            client.request("bad", "GET", f"{SCRIPT}?src={quote(src)}&{q}", expected=refused)
        elif case == 1:
            t = rnd.choice(
                [
                    "../imgserv.toml",
                    "..%2fimgserv.toml",
                    "%2e%2e/%2e%2e/etc/passwd",
                    "/etc/passwd",
                    "photo/../../state/x.jpg",
                ]
            )
            client.request("bad", "GET", f"{SCRIPT}?src={t}&width=100&height=100", expected=refused)
        elif case == 2:
            client.request(
                "bad",
                "GET",
                f"{SCRIPT}?src=missing-{rnd.randrange(1000)}.jpg&width=100&height=100",
                expected=refused,
            )
        elif case == 3:
            # A corrupt original, by the redirector.
            bad = rnd.choice(CORRUPT)
            client.request(
                "bad",
                "GET",
                f"{SCRIPT}?src={bad}&width={rnd.randrange(50, 400)}&height=100",
                expected=refused,
            )
        elif case == 4:
            # A corrupt upload, signed.
            name = rnd.choice(CORRUPT)
            ctype = CONTENT_TYPES.get(Path(name).suffix, "image/jpeg")
            self.signed(
                client,
                "bad",
                "POST",
                "/api/images",
                f"n={self.next_n()}",
                self.blobs[name],
                ctype,
                expected=refused,
            )
        elif case == 5:
            # An unsigned upload.
            client.request(
                "bad",
                "POST",
                f"{SCRIPT}/api/images",
                self.blobs[UPLOADS[0]],
                {"Content-Type": "image/jpeg"},
                expected=refused,
            )
        elif case == 6:
            # A wrong signature: signed with another secret.
            headers = sign(
                self.key[0],
                "0" * 64,
                "POST",
                "/api/images",
                "",
                self.blobs[UPLOADS[1]],
                "image/jpeg",
            )
            client.request(
                "bad",
                "POST",
                f"{SCRIPT}/api/images",
                self.blobs[UPLOADS[1]],
                headers,
                expected=refused,
            )
        elif case == 7:
            # A replay: a signed upload, then the very same request again.
            n = self.next_n()
            body = with_text_chunk(self.blobs[DISTINCT[0]], f"replay {self.seed} {n}")
            (status, _, data), headers = self.signed(
                client, "upload", "POST", "/api/images", f"category=/soak&n={n}", body, "image/png"
            )
            if status in (200, 201):
                self.uploaded(data)
            client.request(
                "bad",
                "POST",
                f"{SCRIPT}/api/images?category=/soak&n={n}",
                body,
                headers,
                expected=refused,
            )
        elif case == 8:
            # An unsigned delete, and an unsigned read (public_reads = false).
            with self.ids_lock:
                image = rnd.choice(self.ids)[0] if self.ids else "0" * 40
            client.request(
                "bad",
                rnd.choice(["DELETE", "GET"]),
                f"{SCRIPT}/api/images/{image}",
                expected=refused,
            )
        elif case == 9:
            # A body that is not what the signature's digest says.
            headers = sign(*self.key, "POST", "/api/images", "", b"something else", "image/jpeg")
            client.request(
                "bad",
                "POST",
                f"{SCRIPT}/api/images",
                self.blobs[UPLOADS[0]],
                headers,
                expected=refused,
            )
        elif case == 10:
            # The 404 handler for an original that does not exist, or a name it does not make.
            name = rnd.choice(
                [
                    f"{'%040x' % rnd.getrandbits(160)}/100/100.jpg",
                    "nothing.jpg",
                    f"{'%040x' % rnd.getrandbits(160)}/x/100.jpg",
                    "r/zz/../../imgserv.toml",
                ]
            )
            client.request("bad", "GET", f"/cache/{name}", expected=refused)
        elif case == 11:
            # A stale date.
            headers = sign(*self.key, "DELETE", "/api/images/" + "0" * 40, "", b"")
            headers["X-Imgserv-Date"] = str(int(time.time()) - 3600)
            client.request(
                "bad", "DELETE", f"{SCRIPT}/api/images/{'0' * 40}", b"", headers, expected=refused
            )
        elif case == 12:
            # An unknown route and a bad method.
            client.request(
                "bad", rnd.choice(["GET", "PUT"]), f"{SCRIPT}/api/nothing", expected=refused
            )
        else:
            # A box too large for [limits].
            client.request(
                "bad",
                "GET",
                f"{SCRIPT}?src={quote(src)}&width=99999&height=99999",
                expected=refused,
            )

    def run(self, until, worker):
        rnd = random.Random(self.seed * 1000 + worker)
        client = Client(self.port, self.stats)
        kinds = list(WEIGHTS)
        weights = [WEIGHTS[k] for k in kinds]
        while time.monotonic() < until:
            kind = rnd.choices(kinds, weights)[0]
            getattr(self, kind)(client, rnd)


# --- what is measured -------------------------------------------------------------------


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def cache_bytes(cache):
    """(apparent bytes, du bytes, largest file) of the regular files under cache/, each inode
    once (as du counts hard links)."""
    seen = set()
    apparent = blocks = largest = 0
    for dirpath, _, files in os.walk(cache):
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except FileNotFoundError:
                continue  # evicted while walking
            if st.st_ino in seen or not (st.st_mode & 0o170000 == 0o100000):
                continue
            seen.add(st.st_ino)
            apparent += st.st_size
            blocks += st.st_blocks * 512
            largest = max(largest, st.st_size)
    return apparent, blocks, largest


def index_bytes(port, key):
    """The cache index's total, from GET /status (signed: reads need a key)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", SCRIPT + "/status", headers=sign(*key, "GET", "/status", "", b""))
        r = conn.getresponse()
        body = json.loads(r.read())
        return body["probes"]["cache_index"]["bytes"]
    except (OSError, ValueError, KeyError):
        return None
    finally:
        conn.close()


def metrics(port):
    """GET /metrics: {name: value}, the values of labelled series summed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", SCRIPT + "/metrics")
        text = conn.getresponse().read().decode()
    except OSError:
        return {}
    finally:
        conn.close()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            name = name.split("{")[0]
            try:
                out[name] = out.get(name, 0) + float(value)
            except ValueError:
                pass
    return out


class Sampler(threading.Thread):
    """RSS of the FastCGI server every second; cache bytes every 5 s."""

    def __init__(self, pid, cache, port, key):
        super().__init__(daemon=True)
        self.pid, self.cache, self.port, self.key = pid, cache, port, key
        self.rss = []  # (seconds since start, KiB)
        self.cache_samples = []  # (seconds, index bytes, apparent, du, largest)
        self.stopping = threading.Event()

    def run(self):
        start = time.monotonic()
        tick = 0
        while not self.stopping.is_set():
            t = time.monotonic() - start
            try:
                self.rss.append((t, rss_kib(self.pid)))
            except OSError:
                pass
            if tick % 5 == 0:
                self.cache_samples.append(
                    (t, index_bytes(self.port, self.key), *cache_bytes(self.cache))
                )
            tick += 1
            self.stopping.wait(max(0.0, start + tick - time.monotonic()))


def rss_check(series, duration):
    """Mean RSS of the second window and of the last (windows of a minute, or a fifth of a
    shorter run); the last may be at most 10 % above the second."""
    w = min(60.0, duration / 5)
    second = [k for t, k in series if w <= t < 2 * w]
    last = [k for t, k in series if duration - w <= t < duration]
    if not second or not last:
        return False, "too few samples", {}
    a, b = statistics.mean(second), statistics.mean(last)
    figures = {
        "window_s": w,
        "second_mean_kib": round(a),
        "last_mean_kib": round(b),
        "growth": round(b / a - 1, 4),
        "min_kib": min(k for _, k in series),
        "max_kib": max(k for _, k in series),
        "first_kib": series[0][1],
        "final_kib": series[-1][1],
    }
    figures["window_means_kib"] = [
        round(statistics.mean(ks))
        for i in range(int(duration // w) + 1)
        if (ks := [k for t, k in series if i * w <= t < (i + 1) * w])
    ]
    return (
        b <= 1.10 * a,
        f"second {a / 1024:.1f} MiB, last {b / 1024:.1f} MiB ({(b / a - 1) * 100:+.1f} %)",
        figures,
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--bin",
        type=Path,
        default=REPO / "target" / "debug",
        help="directory of imgserv-cgi and imgserv-admin",
    )
    p.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    p.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    p.add_argument(
        "--max-bytes", type=int, default=4 << 20, help="[cache] max_bytes (default 4 MiB)"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the temporary site (logs, cache)")
    args = p.parse_args()
    args.bin = args.bin.resolve()

    # A TERM (make interrupted, a CI timeout) unwinds like Ctrl-C, through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    procs = Processes()
    root = None
    ok = False
    try:
        print(
            f"== soak: {args.duration:.0f} s, {args.clients} clients, cache max_bytes {args.max_bytes}; "
            f"{os.cpu_count()} cores, load {loadavg()}",
            flush=True,
        )
        root, site, config, admin, key, port, server = setup(args, procs)
        stats = Stats()
        load = Load(port, key, stats, args.seed)
        sampler = Sampler(server.pid, site["cache"], port, key)
        sampler.start()
        start = time.monotonic()
        until = start + args.duration
        workers = [
            threading.Thread(target=load.run, args=(until, i), daemon=True)
            for i in range(args.clients)
        ]
        for w in workers:
            w.start()
        last_print = start
        while any(w.is_alive() for w in workers):
            time.sleep(1)
            if server.poll() is not None:
                raise RuntimeError(f"imgserv-cgi exited with {server.returncode} during the run")
            if time.monotonic() - last_print >= 60:
                last_print = time.monotonic()
                with stats.lock:
                    n = sum(stats.requests.values())
                    fives = len(stats.server_errors)
                rss = sampler.rss[-1][1] if sampler.rss else 0
                print(
                    f"   {last_print - start:5.0f} s  {n} requests, {fives} 5xx, RSS {rss / 1024:.1f} MiB, "
                    f"load {loadavg()}",
                    flush=True,
                )
        for w in workers:
            w.join()
        elapsed = time.monotonic() - start
        sampler.stopping.set()
        sampler.join()
        final_index = index_bytes(port, key)
        final_apparent, final_du, _ = cache_bytes(site["cache"])
        counters = metrics(port)
        evictions = int(counters.get("imgserv_evictions_total", 0))
        procs.stop()
        fsck = subprocess.run(admin + ["fsck"], capture_output=True, text=True)

        # --- the verdicts ---
        total = sum(stats.requests.values())
        bad_total = stats.requests.get("bad", 0)
        rss_ok, rss_detail, rss_figures = rss_check(sampler.rss, elapsed)
        largest = max((s[4] for s in sampler.cache_samples), default=0)
        peak_index = max((s[1] or 0 for s in sampler.cache_samples), default=0)
        peak_du = max((s[3] for s in sampler.cache_samples), default=0)
        peak_apparent = max((s[2] for s in sampler.cache_samples), default=0)
        print(
            f"\n== {total} requests in {elapsed:.0f} s ({total / elapsed:.1f}/s), load {loadavg()}"
        )
        for kind in WEIGHTS:
            if kind in stats.statuses:
                lat = sorted(stats.latency[kind])
                print(
                    f"   {kind:8} {stats.requests[kind]:7}  statuses "
                    + " ".join(f"{s}:{c}" for s, c in sorted(stats.statuses[kind].items()))
                    + f"  median {statistics.median(lat) * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms"
                )
        for kind, method, url, status, body in stats.server_errors[:20]:
            print(f"   5xx: {kind} {method} {url} -> {status} {body!r}")
        for kind, what in stats.errors[:20]:
            print(f"   transport error: {kind} {what}")
        for kind, method, url, status, body in stats.unexpected[:20]:
            print(f"   unexpected: {kind} {method} {url} -> {status} {body!r}")
        if rss_figures:
            print(
                f"   RSS means per {rss_figures['window_s']:.0f} s (MiB): "
                + " ".join(f"{k / 1024:.0f}" for k in rss_figures["window_means_kib"])
            )
        print(
            f"   cache: limit {args.max_bytes}; peak index {peak_index}, files {peak_apparent}, du {peak_du}, "
            f"largest file {largest}; at the end index {final_index}, files {final_apparent}, du {final_du}"
        )
        print(
            "   /metrics: "
            + ", ".join(f"{k[8:]} {v:.0f}" for k, v in counters.items() if k.endswith("_total"))
        )
        print(f"   fsck: exit {fsck.returncode}: {(fsck.stdout + fsck.stderr).strip()[:500]}\n")
        checks = report(
            [
                ("no 5xx", not stats.server_errors, f"{len(stats.server_errors)} of {total}"),
                ("no broken connections", not stats.errors, f"{len(stats.errors)}"),
                (
                    "bad inputs refused with a 4xx",
                    bad_total > 0 and not stats.unexpected_count.get("bad"),
                    f"{bad_total - stats.unexpected_count.get('bad', 0)} of {bad_total}",
                ),
                (
                    "good requests answered as expected",
                    not any(v for k, v in stats.unexpected_count.items() if k != "bad"),
                    ", ".join(f"{k}: {v}" for k, v in stats.unexpected_count.items() if k != "bad")
                    or "all",
                ),
                ("RSS flat (last window within 10 % of the second)", rss_ok, rss_detail),
                (
                    "cache under max_bytes at the end (index, du)",
                    final_index is not None
                    and final_index <= args.max_bytes
                    and final_du <= args.max_bytes,
                    f"index {final_index}, du {final_du} <= {args.max_bytes}",
                ),
                (
                    "cache under max_bytes + one variant during the run (index, du)",
                    peak_index <= args.max_bytes + largest and peak_du <= args.max_bytes + largest,
                    f"peaks index {peak_index}, du {peak_du} <= {args.max_bytes} + {largest}",
                ),
                ("eviction exercised", evictions > 0, f"{evictions} variants evicted"),
                ("fsck clean", fsck.returncode == 0, f"exit {fsck.returncode}"),
            ]
        )
        ok = all(c["ok"] for c in checks)
        if args.json:
            write_json(
                args.json,
                {
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "machine": {"nproc": os.cpu_count(), "loadavg_end": loadavg()},
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "elapsed_s": elapsed,
                    "requests": stats.requests,
                    "statuses": {
                        k: {str(s): c for s, c in v.items()} for k, v in stats.statuses.items()
                    },
                    "server_errors": stats.server_errors,
                    "transport_errors": stats.errors,
                    "unexpected": stats.unexpected,
                    "unexpected_count": stats.unexpected_count,
                    "latency_ms": {
                        k: {
                            "median": statistics.median(v) * 1000,
                            "p99": sorted(v)[int(len(v) * 0.99)] * 1000,
                        }
                        for k, v in stats.latency.items()
                    },
                    "rss": rss_figures,
                    "rss_series_kib": [k for _, k in sampler.rss],
                    "cache": {
                        "max_bytes": args.max_bytes,
                        "largest_file": largest,
                        "peak_index": peak_index,
                        "peak_files": peak_apparent,
                        "peak_du": peak_du,
                        "final_index": final_index,
                        "final_files": final_apparent,
                        "final_du": final_du,
                        "samples": sampler.cache_samples,
                    },
                    "metrics": counters,
                    "fsck": {"exit": fsck.returncode, "output": fsck.stdout + fsck.stderr},
                    "checks": checks,
                },
            )
    finally:
        procs.stop()
        if root is not None:
            if args.keep or not ok:
                print(f"site kept in {root} (logs: imgserv.log, nginx/error.log, nginx/access.log)")
            else:
                shutil.rmtree(root, ignore_errors=True)
    print("soak:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
