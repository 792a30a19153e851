# imgserv: build, try locally, test, install.
#
#   make                 release build; the CGI ends up in cgi-bin/imgserv.cgi
#   make run             a local server on http://127.0.0.1:8080 with sample photos and the
#                        dashboard (a demo admin whose password is printed once; dev build)
#   make test            fmt + clippy + the whole test suite (installs missing Debian packages as root,
#                        and axe-core from npm into tests/browser; screenshots of the browser tests
#                        are kept in target/test-artefacts/browser)
#   make bench           micro-benchmarks, then imgserv side by side with vips, ImageMagick,
#                        nginx and thumbor (see BENCHMARKS.md; ~15 minutes)
#   make soak            10 minutes of mixed traffic through nginx to the FastCGI server, then
#                        PASS/FAIL on 5xx, memory, the cache's size and fsck (RELIABILITY.md);
#                        SOAK_SECONDS=60 for a shorter run; then 200 SIGKILLs in the crash
#                        tests (IMGSERV_CRASH_KILLS; IMGSERV_CRASH_SEED replays a failed run)
#   make install         PREFIX=/usr/local DESTDIR= (does not build: run make first)
#
# GNU make. Cargo decides what to rebuild, so the cargo steps always run (they are quick no-ops
# when nothing changed).

PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
SYSCONFDIR ?= /etc

BINDIR = $(PREFIX)/bin
CGIDIR = $(PREFIX)/lib/cgi-bin
MANDIR = $(PREFIX)/share/man

# Every binary the crate declares in Cargo.toml; imgserv-cgi is also installed as the CGI.
BINARIES = imgserv-cgi imgserv-admin imgserv-precache imgserv-mirror imgserv-evict imgserv-upload

RELEASE_DIR = target/release
DEBUG_DIR = target/debug
MAN_PAGES = $(wildcard man/*.1 man/*.5 man/*.7 man/*.8)

RUN_ADDR ?= 127.0.0.1:8080
RUN_DIR = var/run
RUN_SAMPLES = photo-rocket-640x427.jpg photo-chelsea-cat-451x300.png \
	photo-bridge-4352x2448-progressive.jpg exif-orient-6.jpg \
	webp-lossy-hopper-128x128.webp gif-static-hopper-128x128.gif

.PHONY: all build-deps test-deps bench-deps run test bench soak install uninstall clean

all: build-deps
	$(CARGO) build --release $(addprefix --bin ,$(BINARIES))
	mkdir -p cgi-bin
	install -m 0755 $(RELEASE_DIR)/imgserv-cgi cgi-bin/imgserv.cgi

build-deps:
	@scripts/install-deps.sh --build-only

test-deps:
	@scripts/install-deps.sh

# The dev profile optimises dependencies (Cargo.toml), so this is fast enough to try images
# with, and it is the same build `make test` uses.
run: build-deps
	$(CARGO) build --bin imgserv-cgi --bin imgserv-admin --bin imgserv-upload
	mkdir -p $(RUN_DIR)/originals $(RUN_DIR)/cache $(RUN_DIR)/state
	@for f in $(RUN_SAMPLES); do \
		[ -e $(RUN_DIR)/originals/$$f ] || cp tests/fixtures/$$f $(RUN_DIR)/originals/; \
	done
	@printf '%s\n' \
		'# Written by make run.' \
		'[originals]' 'root = "$(CURDIR)/$(RUN_DIR)/originals"' \
		'[cache]' 'dir = "$(CURDIR)/$(RUN_DIR)/cache"' 'url = "/cache"' \
		'[state]' 'dir = "$(CURDIR)/$(RUN_DIR)/state"' \
		>$(RUN_DIR)/imgserv.toml
	@echo
	@echo "imgserv on http://$(RUN_ADDR)/ with originals in $(RUN_DIR)/originals; try:"
	@echo "  http://$(RUN_ADDR)/imgserv.cgi?src=photo-rocket-640x427.jpg&width=300&height=200"
	@echo "  http://$(RUN_ADDR)/imgserv.cgi?src=photo-bridge-4352x2448-progressive.jpg&width=800&height=600"
	@echo "  http://$(RUN_ADDR)/imgserv.cgi?src=photo-chelsea-cat-451x300.png&width=200&height=200"
	@echo "  http://$(RUN_ADDR)/imgserv.cgi?src=exif-orient-6.jpg&width=100&height=100"
	@scripts/run-demo.sh $(DEBUG_DIR) $(RUN_DIR)/imgserv.toml tests/fixtures \
		http://$(RUN_ADDR)/imgserv.cgi/admin/
	@echo "Ctrl-C stops it."
	@echo
	exec $(DEBUG_DIR)/imgserv-cgi --listen $(RUN_ADDR) --config $(RUN_DIR)/imgserv.toml

# One dev build serves clippy's check and the tests; the integration tests start private nginx,
# fcgiwrap and Apache instances (found on PATH or in /usr/sbin).
test: test-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test

# The side-by-side harnesses (bench/*.py) print medians, ratios and PASS/FAIL per target of
# issue 5, and keep JSON in $(BENCH_OUT). BENCH_ROUNDS repeats the interleaved runs.
BENCH_OUT = var/bench
BENCH_VENV = $(BENCH_OUT)/thumbor-venv
BENCH_ROUNDS ?= 5
THUMBOR_VERSION = 7.8.0

bench-deps:
	@scripts/install-deps.sh --bench
	@[ -x $(BENCH_VENV)/bin/thumbor ] || { \
		echo "make bench: installing thumbor $(THUMBOR_VERSION) into $(BENCH_VENV)"; \
		python3 -m venv $(BENCH_VENV) && \
		$(BENCH_VENV)/bin/pip install -q thumbor==$(THUMBOR_VERSION); }

bench: bench-deps
	$(CARGO) build --release --features bench-fixtures \
		--bin imgserv-cgi --bin imgserv-upload --bin imgserv-precache --bin imgserv-admin \
		--bin bench-nop-cgi --bin bench-nop-fastcgi
	mkdir -p $(BENCH_OUT)
	@echo "== machine: $$(nproc) cores, $$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load $$(cut -d' ' -f1-3 /proc/loadavg)"
	$(CARGO) bench --features bench-fixtures --bench render
	$(CARGO) bench --features bench-fixtures --bench scale
	$(CARGO) bench --features bench-fixtures --bench browse
	python3 bench/miss.py --imgserv $(RELEASE_DIR)/imgserv-cgi --rounds $(BENCH_ROUNDS) \
		--baseline-env IMGSERV_FSYNC=0 --json $(BENCH_OUT)/miss.json
	python3 bench/sync.py --imgserv $(RELEASE_DIR)/imgserv-cgi --json $(BENCH_OUT)/sync.json
	@# Colour conversion in whole misses: convert (the default) against off (BENCHMARKS.md).
	python3 bench/miss.py --imgserv $(RELEASE_DIR)/imgserv-cgi --imgserv-only --rounds 20 \
		--image photo-rocket-640x427.jpg:320x213 --image icc-displayp3-640x427.jpg:320x213 \
		--env IMGSERV_FSYNC=0 --baseline-env IMGSERV_RENDER_COLOR_MANAGEMENT=off \
		--json $(BENCH_OUT)/miss-color.json
	@# --log-compare: the same hits with the request log line off (IMGSERV_LOG=warn), item 19.
	python3 bench/hits.py --bin $(RELEASE_DIR) --rounds 3 --log-compare --json $(BENCH_OUT)/hits.json
	python3 bench/precache.py --bin $(RELEASE_DIR) --rounds 5 --json $(BENCH_OUT)/precache.json
	@# A permission check and a session on GET /api/images/{id}/meta (issue 12).
	python3 bench/people.py --bin $(RELEASE_DIR) --rounds 3 --json $(BENCH_OUT)/people.json
	@# The dashboard's pages at 100,000 images, FastCGI and CGI; upload through the page (issue 13).
	python3 bench/pages.py --bin $(RELEASE_DIR) --rounds 3 --json $(BENCH_OUT)/pages.json
	python3 bench/thumbor.py --imgserv $(RELEASE_DIR)/imgserv-cgi \
		--thumbor $(BENCH_VENV)/bin/thumbor --rounds 5 --json $(BENCH_OUT)/thumbor.json

# bench/soak.py: a private nginx (etc/nginx-fastcgi.conf) in front of imgserv-cgi --fastcgi, a
# small [cache] max_bytes, hits, misses, uploads, deletes and bad inputs from 4 client threads;
# prints the figures and PASS/FAIL per criterion, keeps JSON in $(BENCH_OUT)/soak.json.
SOAK_SECONDS ?= 600

soak: test-deps
	$(CARGO) build --bin imgserv-cgi --bin imgserv-admin
	mkdir -p $(BENCH_OUT)
	python3 bench/soak.py --bin $(DEBUG_DIR) --duration $(SOAK_SECONDS) --json $(BENCH_OUT)/soak.json
	@# The kill -9 tests of tests/it/crash.rs with 200 kills in all (make test makes 24).
	IMGSERV_CRASH_KILLS=200 $(CARGO) test --test it crash:: -- --test-threads=1

install:
	@for f in $(addprefix $(RELEASE_DIR)/,$(BINARIES)) cgi-bin/imgserv.cgi; do \
		[ -e $$f ] || { echo "make install: $$f is missing: run make first" >&2; exit 1; }; \
	done
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(CGIDIR)
	install -m 0755 $(addprefix $(RELEASE_DIR)/,$(BINARIES)) $(DESTDIR)$(BINDIR)/
	install -m 0755 cgi-bin/imgserv.cgi $(DESTDIR)$(CGIDIR)/imgserv.cgi
	@for page in $(MAN_PAGES); do \
		section=$${page##*.}; \
		echo install -m 0644 $$page $(DESTDIR)$(MANDIR)/man$$section/; \
		install -d $(DESTDIR)$(MANDIR)/man$$section && \
		install -m 0644 $$page $(DESTDIR)$(MANDIR)/man$$section/ || exit 1; \
	done
	@# Never overwrite an operator's configuration.
	@if [ -e etc/imgserv.toml ] && [ ! -e $(DESTDIR)$(SYSCONFDIR)/imgserv/imgserv.toml ]; then \
		echo install -m 0644 etc/imgserv.toml $(DESTDIR)$(SYSCONFDIR)/imgserv/imgserv.toml; \
		install -d $(DESTDIR)$(SYSCONFDIR)/imgserv && \
		install -m 0644 etc/imgserv.toml $(DESTDIR)$(SYSCONFDIR)/imgserv/imgserv.toml; \
	fi

# Leaves $(SYSCONFDIR)/imgserv alone: it holds the operator's configuration.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(BINARIES)) $(DESTDIR)$(CGIDIR)/imgserv.cgi
	@for page in $(MAN_PAGES); do \
		section=$${page##*.}; \
		rm -f $(DESTDIR)$(MANDIR)/man$$section/$${page#man/}; \
	done
	-rmdir $(DESTDIR)$(CGIDIR) 2>/dev/null

clean:
	$(CARGO) clean
	rm -f cgi-bin/imgserv.cgi
	rm -rf $(RUN_DIR)
