#!/usr/bin/env python3
"""Mean CIELAB (D65 white, sRGB decoding) of a binary PPM (P6, 8-bit) on stdin."""
import sys
data = sys.stdin.buffer.read()
# Header: P6, width, height, maxval, then one whitespace byte.
fields, pos = [], 0
while len(fields) < 4:
    while data[pos:pos + 1].isspace(): pos += 1
    if data[pos:pos + 1] == b"#":
        pos = data.index(b"\n", pos) + 1; continue
    start = pos
    while not data[pos:pos + 1].isspace(): pos += 1
    fields.append(data[start:pos])
assert fields[0] == b"P6" and fields[3] == b"255", fields
w, h = int(fields[1]), int(fields[2])
px = data[pos + 1: pos + 1 + w * h * 3]
lin = [((c / 255) / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4) for c in range(256)]
def f(t): return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29
cache = {}
L = A = B = 0.0
n = w * h
for i in range(0, len(px), 3):
    key = px[i:i + 3]
    lab = cache.get(key)
    if lab is None:
        r, g, b = lin[key[0]], lin[key[1]], lin[key[2]]
        x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
        y = 0.2126 * r + 0.7152 * g + 0.0722 * b
        z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
        fx, fy, fz = f(x), f(y), f(z)
        lab = cache[key] = (116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz))
    L += lab[0]; A += lab[1]; B += lab[2]
print(f"{L / n:.2f} {A / n:.2f} {B / n:.2f}")
