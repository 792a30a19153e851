#!/bin/sh
# make run's demo content: an admin user for the dashboard (a random password printed once)
# and the sample photos uploaded into two categories. Idempotent: a second run keeps the
# admin (and says how to reset its password) and the uploads (duplicates are recognised).
#
#   scripts/run-demo.sh BIN_DIR CONFIG SAMPLE_DIR URL
set -eu
bin=$1 config=$2 samples=$3 url=$4

if "$bin/imgserv-admin" --config "$config" user list 2>/dev/null | grep -q '^admin[[:space:]]'; then
	echo "Dashboard user 'admin' exists already; a new password:"
	echo "  $bin/imgserv-admin --config $config user passwd admin"
else
	password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s\n' "$password" |
		"$bin/imgserv-admin" --config "$config" user add admin --password-stdin --role admin >/dev/null
	echo "Dashboard user 'admin' created; its password (shown this once): $password"
fi

# Two categories, a title each; the upload tool skips what the catalog holds already.
upload() { # CATEGORY FILE TITLE
	"$bin/imgserv-upload" --config "$config" --category "$1" --meta "title=$3" \
		--meta "source=imgserv test fixtures (tests/fixtures/CREDITS.md)" "$samples/$2" >/dev/null 2>&1 ||
		echo "(uploading $2 into $1 failed; see imgserv-upload)"
}
upload /photos photo-rocket-640x427.jpg "Rocket on the launch pad"
upload /photos photo-chelsea-cat-451x300.png "Chelsea the cat"
upload /photos photo-bridge-4352x2448-progressive.jpg "Bridge at dusk"
upload /photos exif-orient-6.jpg "Turned by its EXIF orientation"
upload /hopper webp-lossy-hopper-128x128.webp "Grace Hopper (WebP)"
upload /hopper gif-static-hopper-128x128.gif "Grace Hopper (GIF)"
echo "Dashboard: $url"
