"""Helpers shared by the side-by-side benchmarks in bench/: statistics, verdicts, a private
imgserv site, ports, processes. Standard library only (python3 >= 3.9)."""

import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


def median(xs):
    return statistics.median(xs)


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def verdict(ok):
    return "PASS" if ok else "FAIL"


def report(checks):
    """Prints one PASS/FAIL line per (what, ok, detail) check; returns them for the JSON."""
    for what, ok, detail in checks:
        print(f"{verdict(ok)}  {what}  ({detail})" if detail else f"{verdict(ok)}  {what}")
    return [{"what": w, "ok": ok, "detail": d} for w, ok, d in checks]


def write_json(path, obj):
    """Writes a harness's figures (--json)."""
    Path(path).write_text(json.dumps(obj, indent=1))


def loadavg():
    return "%.2f %.2f %.2f" % os.getloadavg()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def wait_unix(path, proc=None, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {path} after {timeout} s")


class Site:
    """A temporary imgserv installation under /tmp (world-traversable, as the web servers'
    children may run as another user): originals/, cache/, state/, store/ (uploaded
    originals), imgserv.toml."""

    def __init__(self, originals, extra_config=""):
        self.dir = Path(tempfile.mkdtemp(prefix="imgserv-bench-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.originals = self.dir / "originals"
        self.cache = self.dir / "cache"
        self.state = self.dir / "state"
        self.store = self.dir / "store"
        self.config = self.dir / "imgserv.toml"
        self.originals.mkdir()
        self.store.mkdir()
        os.chmod(self.store, 0o777)
        for name in originals:
            shutil.copy(FIXTURES / name, self.originals / name)
        self.reset()
        self.config.write_text(
            f'[originals]\nroot = "{self.originals}"\n'
            f'[cache]\ndir = "{self.cache}"\nurl = "/cache"\n{extra_config}\n'
            f'[state]\ndir = "{self.state}"\n'
            f'[store]\ndir = "{self.store}"\n'
        )

    def reset(self):
        """An empty cache and index (uploads stay in store/, their catalog goes with state/)."""
        for d in (self.cache, self.state):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir()
            os.chmod(d, 0o777)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def cgi_env(site, query):
    return {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "imgserv-bench",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/cgi-bin/imgserv.cgi",
        "QUERY_STRING": query,
        "REQUEST_URI": "/cgi-bin/imgserv.cgi?" + query,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "IMGSERV_CONFIG": str(site.config),
        "IMGSERV_LOG": "warn",
    }


def timed(argv, env=None, stdout=subprocess.DEVNULL):
    """Runs argv under `/usr/bin/time -f %M`; returns (wall seconds, peak RSS KiB, stdout)."""
    with tempfile.NamedTemporaryFile(mode="r", suffix=".rss") as rss:
        cmd = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv]
        start = time.perf_counter()
        p = subprocess.run(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE)
        wall = time.perf_counter() - start
        if p.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
        return wall, int(rss.read().strip().splitlines()[-1]), p.stdout


def write_nginx_conf(d, servers, generated_by):
    """nginx.conf (and a copy of Debian's fastcgi_params) in `d` for a private nginx running
    as root with its temporary files under d/tmp: the `server` blocks `servers` in one `http`."""
    (d / "fastcgi_params").write_text(Path("/etc/nginx/fastcgi_params").read_text())
    nl = chr(10)
    (d / "nginx.conf").write_text(f"""# Generated by {generated_by}
user root;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    client_body_temp_path {d}/tmp/body;
    fastcgi_temp_path {d}/tmp/fastcgi;
    proxy_temp_path {d}/tmp/proxy;
    scgi_temp_path {d}/tmp/scgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
{nl.join(servers)}
}}
""")
