#!/usr/bin/env python3
"""Draws kata-256.png, the project logo: a two-tone kite with a "k" cut out of it.

Standard library only (zlib + struct); anti-aliased by 4x4 supersampling.
Usage: python3 scripts/make-logo.py [OUT.png]   (default: kata-256.png)
"""

import struct
import sys
import zlib

SIZE = 256
SS = 4  # samples per pixel per axis

NAVY = (29, 36, 51)
ORANGE = (255, 128, 56)
AMBER = (255, 184, 92)


def rounded_square(x0, y0, x1, y1, r):
    def inside(x, y):
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            return False
        cx = min(max(x, x0 + r), x1 - r)
        cy = min(max(y, y0 + r), y1 - r)
        return (x - cx) ** 2 + (y - cy) ** 2 <= r * r

    return inside


def polygon(points):
    """Even-odd point-in-polygon test."""

    def inside(x, y):
        hit = False
        n = len(points)
        for i in range(n):
            xa, ya = points[i]
            xb, yb = points[(i + 1) % n]
            if (ya > y) != (yb > y):
                xc = xa + (y - ya) * (xb - xa) / (yb - ya)
                if x < xc:
                    hit = not hit
        return hit

    return inside


def stroke(p, q, half):
    """A straight bar of half-width `half` from p to q, square ends."""
    (xa, ya), (xb, yb) = p, q
    dx, dy = xb - xa, yb - ya
    length = (dx * dx + dy * dy) ** 0.5
    nx, ny = -dy / length * half, dx / length * half
    return polygon([(xa + nx, ya + ny), (xb + nx, yb + ny), (xb - nx, yb - ny), (xa - nx, ya - ny)])


def union(*shapes):
    return lambda x, y: any(s(x, y) for s in shapes)


def clip(shape, mask):
    return lambda x, y: shape(x, y) and mask(x, y)


# The kite: top, right, bottom, left; its left half darker than its right.
TOP, RIGHT, BOTTOM, LEFT = (128, 22), (214, 108), (128, 236), (42, 108)
KITE = polygon([TOP, RIGHT, BOTTOM, LEFT])
KITE_LEFT = polygon([TOP, (128, 236), LEFT])
KITE_RIGHT = polygon([TOP, RIGHT, BOTTOM])

# The "k", cut out of the kite in the background colour.
K = union(
    stroke((112, 56), (112, 180), 13),  # stem
    stroke((116, 144), (166, 92), 12),  # arm
    stroke((128, 130), (158, 180), 12),  # leg
)

LAYERS = [
    (NAVY, rounded_square(8, 8, 248, 248, 52)),
    (ORANGE, KITE_LEFT),
    (AMBER, KITE_RIGHT),
    (NAVY, clip(K, KITE)),
]


def render():
    rows = []
    inv = 1.0 / (SS * SS)
    for py in range(SIZE):
        row = bytearray([0])  # PNG filter type 0
        for px in range(SIZE):
            r = g = b = a = 0.0
            for sy in range(SS):
                y = py + (sy + 0.5) / SS
                for sx in range(SS):
                    x = px + (sx + 0.5) / SS
                    colour = None
                    for c, shape in LAYERS:
                        if shape(x, y):
                            colour = c
                    if colour is not None:
                        r += colour[0]
                        g += colour[1]
                        b += colour[2]
                        a += 1
            if a:
                row += bytes((round(r / a), round(g / a), round(b / a), round(255 * a * inv)))
            else:
                row += bytes(4)
        rows.append(bytes(row))
    return b"".join(rows)


def png(width, height, raw):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "kata-256.png"
    with open(out, "wb") as f:
        f.write(png(SIZE, SIZE, render()))


if __name__ == "__main__":
    main()
