#!/usr/bin/env python3
"""Make the evaluation set (assets/eval/) and the calibration set (assets/calib/) from the photos.

Every photo in assets/images/ (*.jpg, *.jpeg, *.png, *.webp; sorted by file name) is decoded with
Pillow, converted to RGB (EXIF orientation ignored) and turned into variants that are saved as
baseline (sequential, Huffman-optimised) JPEG quality 92, 4:2:0, without metadata, as
`<stem>_<variant>.jpg`.

Evaluation set, assets/eval/, 6 variants per photo:
  s320        the whole photo resized so the shorter side is 320
  flip        s320 mirrored left-right
  center70    centred crop keeping 70% of the width and 70% of the height
  crop80      crop keeping 80% of each side at a seeded random offset
  s240        the whole photo with the shorter side 240 (1.33x below s320; the 256-px model
              preprocessing scales it up again)
  crop80flip  crop80 mirrored left-right

Calibration set, assets/calib/, 2 variants per photo, drawn with a different seed stream:
  crop60      crop keeping 60% of each side at a seeded random offset (the offset is redrawn
              until it is at least 8% of the side away from the crop80 offset in x or y)
  rot8 / rotm8  rotation by +8 / -8 degrees (counter-clockwise positive, bicubic); the sign
              alternates along the sorted photo list, starting with a seeded sign,
              then the largest centred rectangle with the photo's aspect ratio that holds no
              border pixels, shrunk by 2 px per side

Crops and rotations are taken from the full-resolution photo; the result is then scaled (LANCZOS,
never up) so that its shorter side is at most 320. s320 / flip / s240 are always exactly 320 / 240
on the shorter side (s320 upsamples photos smaller than that). Longer side after a resize:
(long * short_new + short // 2) // short.

The random offsets come from SHA-256 of "<seed>:<set>:<stem>:<what>" (not from numpy's Generator,
whose value streams may change between numpy versions), so the files depend only on the seed, the
photo bytes and the Pillow build (its resamplers and its bundled libjpeg-turbo encoder).
The script checks that no calibration file is byte-identical or pixel-identical (same size and
mean absolute difference < 1) to any evaluation file, and enforces the folder size budgets.

Usage (from the repository root; needs numpy and Pillow):
    python3 tools/make_eval_set.py                 # seed 20240611, writes assets/eval, assets/calib
    python3 tools/make_eval_set.py --seed N --images DIR --eval-dir DIR --calib-dir DIR
Other *.jpg files already in the output folders are removed; README.md files there are left
alone. Nothing is written when a size budget (eval 2,000,000 B, calib 1,000,000 B) would be
exceeded.
"""

import argparse
import glob
import hashlib
import io
import math
import os
import sys

import numpy as np
from PIL import Image

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SEED = 20240611
JPEG_QUALITY = 92
MAX_EVAL_BYTES = 2_000_000
MAX_CALIB_BYTES = 1_000_000
MAX_SHORT = 320
PHOTO_EXTS = (".jpg", ".jpeg", ".png", ".webp")

EVAL_VARIANTS = ("s320", "flip", "center70", "crop80", "s240", "crop80flip")
CALIB_VARIANTS = ("crop60", "rot")  # "rot" is saved as rot8 or rotm8


def unit(seed, *parts):
    """Deterministic uniform float in [0, 1) from SHA-256 of the seed and the parts."""
    key = ":".join([str(seed)] + [str(p) for p in parts]).encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2.0 ** 64


def resize_short(im, short):
    w, h = im.size
    if w <= h:
        size = (short, (h * short + w // 2) // w)
    else:
        size = ((w * short + h // 2) // h, short)
    if size == im.size:
        return im
    return im.resize(size, Image.LANCZOS, reducing_gap=None)


def cap_short(im, short=MAX_SHORT):
    return resize_short(im, short) if min(im.size) > short else im


def crop_box(w, h, frac, fx=None, fy=None):
    """Box keeping `frac` of each side; fx, fy in [0, 1) place it (None: centred)."""
    cw, ch = int(round(w * frac)), int(round(h * frac))
    left = (w - cw) // 2 if fx is None else min(int((w - cw + 1) * fx), w - cw)
    top = (h - ch) // 2 if fy is None else min(int((h - ch + 1) * fy), h - ch)
    return (left, top, left + cw, top + ch)


def rotate_inscribed(im, degrees):
    """Rotate about the centre, then crop the largest centred same-aspect border-free rectangle."""
    w, h = im.size
    rot = im.rotate(degrees, resample=Image.BICUBIC, expand=False)
    t = math.radians(abs(degrees))
    c, s = math.cos(t), math.sin(t)
    scale = min(w / (w * c + h * s), h / (w * s + h * c))
    cw, ch = int(w * scale) - 4, int(h * scale) - 4
    left, top = (w - cw) // 2, (h - ch) // 2
    return rot.crop((left, top, left + cw, top + ch))


def eval_offsets(seed, stem):
    return unit(seed, "eval", stem, "crop80.x"), unit(seed, "eval", stem, "crop80.y")


def make_eval(im, stem, seed):
    w, h = im.size
    out = {}
    out["s320"] = resize_short(im, 320)
    out["flip"] = out["s320"].transpose(Image.FLIP_LEFT_RIGHT)
    out["center70"] = cap_short(im.crop(crop_box(w, h, 0.70)))
    fx, fy = eval_offsets(seed, stem)
    c80 = cap_short(im.crop(crop_box(w, h, 0.80, fx, fy)))
    out["crop80"] = c80
    out["s240"] = resize_short(im, 240)
    out["crop80flip"] = c80.transpose(Image.FLIP_LEFT_RIGHT)
    return [(v, out[v]) for v in EVAL_VARIANTS]


def make_calib(im, stem, index, seed):
    w, h = im.size
    ex, ey = eval_offsets(seed, stem)
    # 60% crop at an offset at least 8% of the side away from the eval crop80 offset (in x or y).
    for k in range(1000):
        fx, fy = unit(seed, "calib", stem, "crop60.x", k), unit(seed, "calib", stem, "crop60.y", k)
        b = crop_box(w, h, 0.60, fx, fy)
        e = crop_box(w, h, 0.80, ex, ey)
        if abs(b[0] - e[0]) >= 0.08 * w or abs(b[1] - e[1]) >= 0.08 * h:
            break
    out = [("crop60", cap_short(im.crop(b)))]
    deg = 8 if (index + (unit(seed, "calib", "rot.sign") < 0.5)) % 2 == 0 else -8
    out.append(("rot8" if deg > 0 else "rotm8", cap_short(rotate_inscribed(im, deg))))
    return out


def jpeg_bytes(im):
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling="4:2:0", optimize=True,
            progressive=False)
    return buf.getvalue()


def write_set(out_dir, items, budget):
    rel = os.path.relpath(out_dir, REPO_ROOT)
    total = sum(len(d) for _, d in items)
    if total > budget:
        raise SystemExit("%s would be %d B, over its budget of %d B; nothing written"
                         % (rel, total, budget))
    os.makedirs(out_dir, exist_ok=True)
    names = set()
    for name, data in items:
        path = os.path.join(out_dir, name)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        names.add(name)
    for stale in sorted(glob.glob(os.path.join(out_dir, "*.jpg"))):
        if os.path.basename(stale) not in names:
            os.remove(stale)
            print("removed stale %s" % stale)
    print("%s: %d files, %d B" % (rel, len(items), total))
    return total


def decoded(data):
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--images", default=os.path.join(REPO_ROOT, "assets", "images"))
    ap.add_argument("--eval-dir", default=os.path.join(REPO_ROOT, "assets", "eval"))
    ap.add_argument("--calib-dir", default=os.path.join(REPO_ROOT, "assets", "calib"))
    args = ap.parse_args()

    photos = sorted(p for p in os.listdir(args.images)
                    if os.path.splitext(p)[1].lower() in PHOTO_EXTS)
    if not photos:
        raise SystemExit("no photos in %s" % args.images)
    eval_items, calib_items = [], []
    for index, p in enumerate(photos):
        stem = os.path.splitext(p)[0]
        with Image.open(os.path.join(args.images, p)) as src:
            im = src.convert("RGB")
        for v, out in make_eval(im, stem, args.seed):
            eval_items.append(("%s_%s.jpg" % (stem, v), jpeg_bytes(out)))
        for v, out in make_calib(im, stem, index, args.seed):
            calib_items.append(("%s_%s.jpg" % (stem, v), jpeg_bytes(out)))
        print("%-22s %dx%d" % (p, im.size[0], im.size[1]))

    # Calibration inputs must differ from every evaluation input.
    eval_hashes = {hashlib.sha256(d).digest() for _, d in eval_items}
    eval_px = [decoded(d) for _, d in eval_items]
    for name, data in calib_items:
        if hashlib.sha256(data).digest() in eval_hashes:
            raise SystemExit("calib %s is byte-identical to an eval file" % name)
        a = decoded(data)
        for (ename, _), b in zip(eval_items, eval_px):
            if a.shape == b.shape and np.abs(a - b).mean() < 1.0:
                raise SystemExit("calib %s is pixel-identical to eval %s" % (name, ename))
    for name, data in eval_items + calib_items:
        if min(Image.open(io.BytesIO(data)).size) > MAX_SHORT:
            raise SystemExit("%s: shorter side above %d" % (name, MAX_SHORT))

    for items, budget, d in ((eval_items, MAX_EVAL_BYTES, args.eval_dir),
                             (calib_items, MAX_CALIB_BYTES, args.calib_dir)):
        total = sum(len(x) for _, x in items)
        if total > budget:
            raise SystemExit("%s would be %d B, over its budget of %d B; nothing written"
                             % (d, total, budget))
    write_set(args.eval_dir, eval_items, MAX_EVAL_BYTES)
    write_set(args.calib_dir, calib_items, MAX_CALIB_BYTES)
    print("seed %d; %d photos -> %d eval + %d calib files" % (
        args.seed, len(photos), len(eval_items), len(calib_items)), file=sys.stderr)


if __name__ == "__main__":
    main()
