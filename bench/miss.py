#!/usr/bin/env python3
"""Misses side by side (issue 5): whole-process time and peak RSS of `imgserv.cgi` as a CGI
with an empty cache, `vipsthumbnail` and ImageMagick's `convert`, fitting each large photo of
tests/fixtures (photo-*.jpg over 5 MP) into 800x600 at JPEG quality 85; PNG and WebP sources
against vipsthumbnail only. Runs are interleaved (imgserv, vips, convert, imgserv, …) with the
order rotated each round, so machine load hits every tool alike; medians per image.

    bench/miss.py --imgserv target/release/imgserv-cgi [--rounds 7] [--json out.json]

--baseline runs another build interleaved with the others; --baseline-env NAME=VALUE runs the
baseline (the same build, without --baseline) with that variable set: `--baseline-env
IMGSERV_FSYNC=0` measures what syncing a new variant and its directories costs a miss.
--image NAME:WxH (repeatable) misses those fixtures into those boxes instead of the usual set
(against vipsthumbnail only); --imgserv-only leaves vipsthumbnail and convert out, for cheap
rounds of imgserv against its baseline (`--image photo-rocket-640x427.jpg:320x213
--baseline-env IMGSERV_RENDER_COLOR_MANAGEMENT=off`: the Adobe RGB photo without conversion);
--env NAME=VALUE sets a variable for both (IMGSERV_FSYNC=0: no sync noise in such a run).
"""

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from benchlib import (FIXTURES, Site, cgi_env, geomean, loadavg, median, report, timed,
                      verdict, write_json)

CONVERT = "/usr/bin/convert"  # /usr/local/bin/convert may be a stand-in
BOX = (800, 600)


def large_photos():
    out = []
    for p in sorted(FIXTURES.glob("photo-*.jpg")):
        m = re.search(r"-(\d+)x(\d+)", p.name)
        if m and int(m[1]) * int(m[2]) > 5_000_000:
            out.append(p.name)
    return out


# Other formats, each with a box that shrinks it (vipsthumbnail would upscale otherwise).
OTHERS = [
    ("photo-astronaut-512x512.png", (256, 256), "png", ""),
    ("webp-lossy-adwaita-4096x4096.webp", BOX, "webp", "[Q=80]"),
    ("webp-lossless-simple-300x300.webp", (150, 150), "webp", "[lossless]"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--imgserv", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--baseline", help="another imgserv-cgi build, run interleaved too")
    ap.add_argument("--baseline-env", action="append", default=[], metavar="NAME=VALUE",
                    help="run the baseline with this variable (repeatable)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="run imgserv and the baseline with this variable (repeatable)")
    ap.add_argument("--image", action="append", default=[], metavar="NAME:WxH",
                    help="a fixture and its box instead of the usual set (repeatable)")
    ap.add_argument("--imgserv-only", action="store_true",
                    help="run no vipsthumbnail or convert (imgserv and --baseline only)")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.imgserv_only and not (args.baseline or args.baseline_env):
        sys.exit("miss.py: --imgserv-only needs --baseline or --baseline-env")
    imgserv = str(Path(args.imgserv).resolve())
    baseline = args.baseline and str(Path(args.baseline).resolve())
    both_env = dict(kv.split("=", 1) for kv in args.env)
    baseline_env = both_env | dict(kv.split("=", 1) for kv in args.baseline_env)
    if args.baseline_env and not baseline:
        baseline = imgserv
    for tool in ("vipsthumbnail", CONVERT, "/usr/bin/time"):
        if not shutil.which(tool):
            sys.exit(f"miss.py: {tool} is missing (scripts/install-deps.sh --bench)")

    if args.image:
        jobs = [image_job(spec) for spec in args.image]
        if len({j[0] for j in jobs}) < len(jobs):
            sys.exit("miss.py: --image names a fixture twice (its runs would be mixed)")
    else:
        jobs = [(p, BOX, "jpg", "[Q=85]", True) for p in large_photos()]
        jobs += [(n, box, ext, opt, False) for n, box, ext, opt in OTHERS]
    # raster = 1: the same output size as vipsthumbnail's (the default raster of 50 would give
    # imgserv smaller outputs for portrait photos, and an unfair edge).
    site = Site([j[0] for j in jobs], extra_config="raster = 1")
    out = Path(tempfile.mkdtemp(prefix="imgserv-bench-out-"))
    load_before = loadavg()
    tools = ("imgserv", "vips", "convert", "baseline")
    samples = {(j[0], t): [] for j in jobs for t in tools}
    rss = {(j[0], t): [] for j in jobs for t in tools}
    try:
        for rnd in range(args.rounds):
            for name, (w, h), ext, vopt, with_convert in jobs:
                src = str(site.originals / name)
                runs = {"imgserv": lambda: run_imgserv(imgserv, site, name, w, h, both_env)}
                if not args.imgserv_only:
                    runs["vips"] = lambda: timed(
                        ["vipsthumbnail", src, "-s", f"{w}x{h}", "-o", f"{out}/v.{ext}{vopt}"]
                    )
                if baseline:
                    runs["baseline"] = lambda: run_imgserv(baseline, site, name, w, h,
                                                           baseline_env)
                if with_convert and not args.imgserv_only:
                    runs["convert"] = lambda: timed(
                        [CONVERT, src, "-resize", f"{w}x{h}", "-quality", "85", f"{out}/c.jpg"]
                    )
                order = list(runs)
                k = rnd % len(order)
                for tool in order[k:] + order[:k]:
                    wall, kib, _ = runs[tool]()
                    samples[(name, tool)].append(wall)
                    rss[(name, tool)].append(kib)
            print(f"round {rnd + 1}/{args.rounds} done (load {loadavg()})", file=sys.stderr)
    finally:
        site.remove()
        shutil.rmtree(out, ignore_errors=True)

    results = {"load_before": load_before, "load_after": loadavg(), "images": []}
    if not args.imgserv_only:
        results["checks"] = against_peers(jobs, samples, rss, args.rounds, results)
    if baseline:
        print(f"\nagainst the baseline {baseline} {baseline_env or ''} (same rounds; ms: "
              "median, p10–p90; the ratio of medians and the median of the rounds' ratios)")
        for name, *_ in jobs:
            xi, xb = samples[(name, "imgserv")], samples[(name, "baseline")]
            mi, mb = median(xi), median(xb)
            paired = median([i / b for i, b in zip(xi, xb)])
            print(f"{name:<44} {mi * 1e3:7.1f} ({spread(xi)}) {mb * 1e3:7.1f} ({spread(xb)}) "
                  f"{mi / mb:5.3f}x  rounds {paired:5.3f}x  "
                  f"RSS {max(rss[(name, 'imgserv')]) / 1024:.1f} / "
                  f"{max(rss[(name, 'baseline')]) / 1024:.1f} MiB")
            results.setdefault("baseline", []).append(
                {"image": name, "imgserv_ms": mi * 1e3, "baseline_ms": mb * 1e3,
                 "imgserv_runs_ms": [x * 1e3 for x in xi],
                 "baseline_runs_ms": [x * 1e3 for x in xb],
                 "ratio_of_medians": mi / mb, "median_ratio_of_rounds": paired,
                 "baseline_env": baseline_env})
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    if args.json:
        write_json(args.json, results)


def spread(xs):
    """p10–p90 in ms."""
    s = sorted(xs)
    return f"{s[len(s) // 10] * 1e3:.1f}–{s[len(s) * 9 // 10] * 1e3:.1f}"


def against_peers(jobs, samples, rss, rounds, results):
    """Prints imgserv against vipsthumbnail and convert; returns the checks."""
    hdr = (f"{'image':<44} {'imgserv':>8} {'vips':>8} {'convert':>8} {'i/vips':>7} "
           f"{'conv/i':>7} {'RSS i':>7} {'RSS v':>7} {'RSS c':>7}  RSS≤vips")
    print(f"\nMisses, medians of {rounds} interleaved runs (ms; RSS in MiB, max over runs)")
    print(hdr)
    print("-" * len(hdr))
    jpeg_ratios, conv_speedups, other_ratios, rss_ok_all = [], [], [], True
    for name, box, ext, _, with_convert in jobs:
        mi, mv = median(samples[(name, "imgserv")]), median(samples[(name, "vips")])
        ri, rv = max(rss[(name, "imgserv")]), max(rss[(name, "vips")])
        ratio = mi / mv
        rss_ok = ri <= rv
        entry = {"image": name, "box": box, "imgserv_ms": mi * 1e3, "vips_ms": mv * 1e3,
                 "ratio_vips": ratio, "rss_imgserv_kib": ri, "rss_vips_kib": rv}
        conv = ""
        if with_convert:
            mc = median(samples[(name, "convert")])
            rc = max(rss[(name, "convert")])
            jpeg_ratios.append(ratio)
            conv_speedups.append(mc / mi)
            rss_ok_all &= rss_ok
            entry.update(convert_ms=mc * 1e3, speedup_convert=mc / mi, rss_convert_kib=rc)
            conv = f"{mc * 1e3:8.1f}"
            tail = f"{mc / mi:6.2f}x {ri / 1024:7.1f} {rv / 1024:7.1f} {rc / 1024:7.1f}"
        else:
            other_ratios.append((name, ratio))
            conv = f"{'-':>8}"
            tail = f"{'-':>7} {ri / 1024:7.1f} {rv / 1024:7.1f} {'-':>7}"
        print(f"{name:<44} {mi * 1e3:8.1f} {mv * 1e3:8.1f} {conv} {ratio:6.2f}x {tail}  "
              f"{verdict(rss_ok)}")
        results["images"].append(entry)
    checks = []
    if jpeg_ratios:
        g = geomean(jpeg_ratios)
        worst = max(jpeg_ratios)
        gc = geomean(conv_speedups)
        checks += [
            (f"miss: geomean imgserv/vipsthumbnail over {len(jpeg_ratios)} photos ≤ 0.6",
             g <= 0.6, f"{g:.2f}"),
            ("miss: no photo above 1.0× vipsthumbnail", worst <= 1.0, f"worst {worst:.2f}"),
            ("miss: geomean speed-up over ImageMagick ≥ 4×", gc >= 4.0, f"{gc:.2f}×"),
            ("miss: peak RSS ≤ vipsthumbnail's on every photo", rss_ok_all, ""),
        ]
    for name, r in other_ratios:
        checks.append((f"miss: {name} ≤ 1.0× vipsthumbnail", r <= 1.0, f"{r:.2f}"))
    print()
    return report(checks)


def image_job(spec):
    """`NAME:WxH` → a job: the fixture into that box, against vipsthumbnail only."""
    name, _, box = spec.rpartition(":")
    m = re.fullmatch(r"(\d+)x(\d+)", box)
    if not name or not m or not (FIXTURES / name).is_file():
        sys.exit(f"miss.py: --image {spec!r}: expected NAME:WxH, NAME a file of tests/fixtures")
    ext = Path(name).suffix.lstrip(".").replace("jpeg", "jpg")
    return (name, (int(m[1]), int(m[2])), ext, "", False)


def run_imgserv(imgserv, site, name, w, h, extra_env=None):
    site.reset()  # an empty cache and index each run, outside the timed region
    env = cgi_env(site, f"src={name}&width={w}&height={h}") | (extra_env or {})
    wall, kib, stdout = timed([imgserv], env=env, stdout=-1)
    if not stdout.startswith(b"Status: 302"):
        raise RuntimeError(f"imgserv.cgi answered {stdout[:200]!r}")
    return wall, kib, stdout


if __name__ == "__main__":
    main()
