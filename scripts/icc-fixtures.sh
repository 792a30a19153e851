#!/usr/bin/env bash
# Makes the colour-management fixtures in tests/fixtures from photo-rocket-640x427.jpg (an
# Adobe RGB (1998) photo, with Adobe's profile embedded), and prints each one's reference: the
# mean CIELAB colour of Little CMS's conversion to sRGB (jpgicc/tificc), which
# render::color's tests hold our conversion to (within ΔE 2).
#
# Needs liblcms2-utils (jpgicc, tificc), imagemagick and webp (cwebp). The fixtures are
# committed; this only documents (and can redo) how they were made. Run from the repository.
set -euo pipefail
F=tests/fixtures
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
IM=/usr/bin/convert

# Display P3: DCI-P3 primaries, D65, the sRGB curve, written by lcms itself.
python3 scripts/make-display-p3-icc.py "$T/DisplayP3.icc"
# The photo from its embedded Adobe RGB to Display P3, the profile embedded (-e).
jpgicc -o"$T/DisplayP3.icc" -e -q92 $F/photo-rocket-640x427.jpg $F/icc-displayp3-640x427.jpg
# Half size, the profile kept: a PNG (iCCP) in Adobe RGB, a lossy WebP (ICCP) in Display P3.
$IM $F/photo-rocket-640x427.jpg -resize 320x214 $F/icc-adobergb-320x214.png
cwebp -quiet -q 90 -metadata icc -resize 320 214 $F/icc-displayp3-640x427.jpg \
  -o $F/icc-displayp3-320x214.webp

for f in photo-rocket-640x427.jpg icc-displayp3-640x427.jpg; do
  jpgicc -q100 $F/$f "$T/ref.jpg" >/dev/null
  echo "$f $($IM "$T/ref.jpg" ppm:- | python3 scripts/mean-lab.py)"
done
for f in icc-adobergb-320x214.png icc-displayp3-320x214.webp; do
  $IM $F/$f "$T/in.tif"
  tificc "$T/in.tif" "$T/ref.tif" >/dev/null
  echo "$f $($IM "$T/ref.tif" ppm:- | python3 scripts/mean-lab.py)"
done
