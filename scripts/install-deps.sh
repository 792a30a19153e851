#!/usr/bin/env bash
# Install the Debian packages imgserv needs to build and to run its test suite.
#
#   scripts/install-deps.sh              build + test dependencies (web servers, vips, rsync, curl,
#                                        strace, jpgicc, chromium + chromium-driver, node + npm,
#                                        s3s-fs, a local S3 server, built with cargo install, and
#                                        axe-core into tests/browser/node_modules with npm ci)
#   scripts/install-deps.sh --build-only what `make` / `make run` need (a C compiler, nasm)
#   scripts/install-deps.sh --bench      what `make` and `make bench` need: vips, ImageMagick,
#                                        hyperfine, wrk, nginx, fcgiwrap, python3-venv, strace
#
# Idempotent and quick when everything is present: it only calls apt-get when a tool is missing,
# and then runs `apt-get update` once. As non-root it prints the apt-get line and exits 1.
set -euo pipefail

build_only=false
bench=false
case "${1:-}" in
  --build-only) build_only=true ;;
  --bench) build_only=true; bench=true ;;
  "") ;;
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "install-deps.sh: unknown argument: $1 (expected --build-only or --bench)" >&2; exit 2 ;;
esac

# Tools in /usr/sbin are not on a non-root PATH on Debian.
PATH="$PATH:/usr/sbin:/sbin"

missing=()

# need PACKAGE CHECK...: queue PACKAGE unless every check passes.
# A check is a command name, "mod:NAME" (an Apache module) or "dpkg:PACKAGE" (for packages
# without a command, like headers).
need() {
  local pkg=$1; shift
  local check
  for check in "$@"; do
    case $check in
      mod:*) [[ -e /usr/lib/apache2/modules/mod_${check#mod:}.so ]] || { missing+=("$pkg"); return; } ;;
      dpkg:*) [[ $(dpkg-query -W -f='${Status}' "${check#dpkg:}" 2>/dev/null) == 'install ok installed' ]] ||
        { missing+=("$pkg"); return; } ;;
      *) command -v "$check" >/dev/null 2>&1 || { missing+=("$pkg"); return; } ;;
    esac
  done
}

# Build: the mozjpeg and webp crates compile C (cc), mozjpeg's SIMD code needs nasm.
need gcc cc
need libc6-dev dpkg:libc6-dev
need nasm nasm
if ! $build_only; then
  need nginx-light nginx
  need fcgiwrap fcgiwrap
  need apache2 apache2 mod:cgi mod:cgid mod:proxy_fcgi
  need libapache2-mod-fcgid mod:fcgid
  need spawn-fcgi spawn-fcgi
  need libvips-tools vipsthumbnail
  need rsync rsync
  need curl curl
  # The test of imgserv-signing(7) runs the page's Python client against its test vectors.
  need python3 python3
  need openssl openssl
  # tests/it/ldap.rs runs a private slapd and loads its entries with ldapadd.
  need slapd slapd
  need ldap-utils ldapadd
  # tests/it/cache.rs traces a miss's syscalls to check what it syncs, and in which order.
  need strace strace
  # Little CMS's jpgicc: the reference colour conversion render::color's tests compare with.
  need liblcms2-utils jpgicc
  # tests/it/memcached.rs runs a private memcached (and kills it mid-test).
  need memcached memcached
  # tests/it/browser.rs and the dashboard's tests drive headless Chromium through chromedriver.
  need chromium chromium
  need chromium-driver chromedriver
  # npm installs axe-core (tests/browser/package-lock.json) for the accessibility checks.
  need nodejs node
  need npm npm
fi
if $bench; then
  need nginx-light nginx
  need fcgiwrap fcgiwrap
  need libvips-tools vipsthumbnail
  # /usr/local/bin/convert may be a stand-in: the bench calls /usr/bin/convert, so check that.
  need imagemagick /usr/bin/convert
  need hyperfine hyperfine
  need wrk wrk
  need time /usr/bin/time
  need strace strace
  # thumbor goes into a venv (make bench); ensurepip is what Debian's python3 lacks without it.
  if [[ $(command -v python3) == /usr/bin/python3 ]]; then
    need python3-venv dpkg:python3-venv
  fi
fi


# The tests load mod_cgi from their own config, but operators following etc/apache-cgi.conf need
# it enabled in the system instance (mod_cgid goes with Debian's default event MPM).
enable_cgi() {
  if ! $build_only && ((EUID == 0)) && command -v a2enmod >/dev/null 2>&1 &&
     [[ ! -e /etc/apache2/mods-enabled/cgid.load && ! -e /etc/apache2/mods-enabled/cgi.load ]]; then
    a2enmod -q cgid >/dev/null
  fi
}

# The S3 store tests run s3s-fs, an S3-compatible server that checks signatures. It is a Rust
# crate, built once into ~/.cargo/bin, which survives on a reused machine. 0.14.1 is the last
# release that builds with our rustc.
install_s3s_fs() {
  local bin="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
  if $build_only || [[ -x $bin ]]; then
    return
  fi
  echo "install-deps.sh: building s3s-fs 0.14.1 for the S3 tests with cargo install (takes 4-9 minutes)" >&2
  cargo install --locked s3s-fs@0.14.1 --features binary
}

# axe-core, pinned by tests/browser/package-lock.json, into tests/browser/node_modules: the
# browser tests inject its axe.min.js into pages. Reinstalled when the lock file changes. No root
# needed; the only network access of the browser tests, at install time, not at test time.
install_axe() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/browser"
  if $build_only || ! command -v npm >/dev/null 2>&1; then
    return
  fi
  if [[ -e $dir/node_modules/axe-core/axe.min.js && $dir/node_modules/.package-lock.json -nt $dir/package-lock.json ]]; then
    return
  fi
  echo "install-deps.sh: installing axe-core into $dir/node_modules (npm ci)" >&2
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
}

if ((${#missing[@]} == 0)); then
  enable_cgi
  install_s3s_fs
  install_axe
  exit 0
fi

apt_line="DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if ((EUID != 0)); then
  echo "install-deps.sh: missing packages: ${missing[*]}" >&2
  echo "install-deps.sh: as root run:  apt-get update && $apt_line" >&2
  exit 1
fi

echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# Don't let package installs start the distribution's own services on a CI box (port 80 etc.):
# the tests run private instances. policy-rc.d is the Debian mechanism for that; restore it after.
policy=/usr/sbin/policy-rc.d
created_policy=false
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && created_policy=true
fi
trap 'if $created_policy; then rm -f "$policy"; fi' EXIT
apt-get install -y -q --no-install-recommends "${missing[@]}"
enable_cgi
install_s3s_fs
install_axe
