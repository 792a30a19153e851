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

# Two categories; the upload tool skips what the catalog holds already.
"$bin/imgserv-upload" --config "$config" --category /photos \
	"$samples/photo-rocket-640x427.jpg" "$samples/photo-chelsea-cat-451x300.png" \
	"$samples/photo-bridge-4352x2448-progressive.jpg" "$samples/exif-orient-6.jpg" >/dev/null 2>&1 ||
	echo "(uploading into /photos failed; see imgserv-upload)"
"$bin/imgserv-upload" --config "$config" --category /hopper \
	"$samples/webp-lossy-hopper-128x128.webp" "$samples/gif-static-hopper-128x128.gif" >/dev/null 2>&1 ||
	echo "(uploading into /hopper failed; see imgserv-upload)"
echo "Dashboard: $url"
