#!/usr/bin/env python3
"""Fetch the ImageNet label list and the demo/test photographs into assets/.

Writes (paths relative to the repository root):
  assets/imagenet_classes.txt       1000 ImageNet-1k labels, one per line, line N+1 = class N.
                                    From npm @tensorflow-models/mobilenet@2.1.1,
                                    package/dist/imagenet_classes.js (Apache-2.0).
  assets/images/chelsea.jpg         skimage chelsea.png  -> JPEG q92 4:2:0 baseline (CC0)
  assets/images/coffee.jpg          skimage coffee.png   -> JPEG q92 4:2:0 baseline (CC0)
  assets/images/rocket.jpg          skimage rocket.jpg, original bytes (public domain, SpaceX)
  assets/images/astronaut.png       skimage astronaut.png, original bytes (public domain, NASA)
  assets/images/hubble_deep_field.jpg
                                    skimage hubble_deep_field.jpg re-encoded JPEG q90 4:2:0
                                    (public domain, NASA/ESA); the original is 527,940 B and would
                                    push assets/images/ over the 1.5 MB budget.
  assets/images/retina.jpg          skimage retina.jpg (1411x1411) downscaled to 400x400 (Pillow
                                    LANCZOS), JPEG q90 4:2:0 baseline (CC0, Mikael Haggstrom)
The above from the scikit-image 0.26.0 wheel (skimage/data/).
  assets/images/china.jpg           scikit-learn 1.9.1 wheel, sklearn/datasets/images/china.jpg,
                                    original bytes (CC BY 2.0, danielbuechele on Flickr)
  assets/images/flower.jpg          scikit-learn 1.9.1 wheel, sklearn/datasets/images/flower.jpg,
                                    original bytes (CC BY 2.0, vultilion on Flickr)
  assets/images/grace_hopper.jpg    matplotlib 3.11.2 wheel, mpl-data/sample_data/grace_hopper.jpg,
                                    original bytes (public domain, U.S. Navy official portrait)
Re-encoded files carry no EXIF/ICC/XMP (pixels are treated as sRGB; china.jpg and flower.jpg keep
their embedded sRGB IEC61966-2.1 profile). Only photographs of real scenes under CC0, public
domain or CC BY 2.0 (attribution in assets/images/README.md) are used.

Requirements: python3 with Pillow (pip install pillow), pip, npm and node on PATH.
Usage (from the repository root):
    python3 tools/fetch_assets.py                    # downloads into a temp dir
    python3 tools/fetch_assets.py --download-dir DIR # keep / reuse the downloads in DIR
      (DIR may already hold scikit_image-0.26.0-*.whl, scikit_learn-1.9.1-*.whl,
       matplotlib-3.11.2-*.whl and tensorflow-models-mobilenet-2.1.1.tgz)
    python3 tools/fetch_assets.py --only images      # photos only (no npm/node needed)
    python3 tools/fetch_assets.py --only labels      # label list only
pip picks the wheel matching the running interpreter; the photo members are checked against the
sha256 values in SOURCE_SHA256, so any platform wheel of these releases works.

JPEG encoding goes through the libjpeg(-turbo) bundled with Pillow, so a different Pillow build
may produce different (equally valid) bytes. The committed files are the reference; the golden
fixtures in tests/fixtures/ are derived from the committed JPEGs (tools/reference_forward.py).
"""

import argparse
import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

from PIL import Image

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.path.join(REPO_ROOT, "assets")
IMAGES = os.path.join(ASSETS, "images")

SKIMAGE = "scikit-image==0.26.0"
SKIMAGE_GLOB = "scikit_image-0.26.0-*.whl"
SKLEARN = "scikit-learn==1.9.1"
SKLEARN_GLOB = "scikit_learn-1.9.1-*.whl"
MATPLOTLIB = "matplotlib==3.11.2"
MATPLOTLIB_GLOB = "matplotlib-3.11.2-*.whl"
MOBILENET = "@tensorflow-models/mobilenet@2.1.1"
MOBILENET_TGZ = "tensorflow-models-mobilenet-2.1.1.tgz"
LABELS_MEMBER = "package/dist/imagenet_classes.js"

MAX_IMAGES_BYTES = 2_200_000
# (pip requirement, wheel glob, member path in the wheel, output name, action)
#   action: ("copy",) original bytes | ("jpeg", quality) re-encode |
#           ("jpeg", quality, short_side) downscale (LANCZOS) so the shorter side is short_side,
#           then re-encode
IMAGE_PLAN = [
    (SKIMAGE, SKIMAGE_GLOB, "skimage/data/chelsea.png", "chelsea.jpg", ("jpeg", 92)),
    (SKIMAGE, SKIMAGE_GLOB, "skimage/data/coffee.png", "coffee.jpg", ("jpeg", 92)),
    (SKIMAGE, SKIMAGE_GLOB, "skimage/data/rocket.jpg", "rocket.jpg", ("copy",)),
    (SKIMAGE, SKIMAGE_GLOB, "skimage/data/astronaut.png", "astronaut.png", ("copy",)),
    (SKIMAGE, SKIMAGE_GLOB, "skimage/data/hubble_deep_field.jpg", "hubble_deep_field.jpg",
     ("jpeg", 90)),
    (SKIMAGE, SKIMAGE_GLOB, "skimage/data/retina.jpg", "retina.jpg", ("jpeg", 90, 400)),
    (SKLEARN, SKLEARN_GLOB, "sklearn/datasets/images/china.jpg", "china.jpg", ("copy",)),
    (SKLEARN, SKLEARN_GLOB, "sklearn/datasets/images/flower.jpg", "flower.jpg", ("copy",)),
    (MATPLOTLIB, MATPLOTLIB_GLOB, "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
     "grace_hopper.jpg", ("copy",)),
]
# sha256 of each source member as stored in the wheels above (checked before use, so a different
# platform wheel of the same release must carry the same bytes).
SOURCE_SHA256 = {
    "skimage/data/chelsea.png":
        "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "skimage/data/coffee.png":
        "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "skimage/data/rocket.jpg":
        "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
    "skimage/data/astronaut.png":
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "skimage/data/hubble_deep_field.jpg":
        "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
    "skimage/data/retina.jpg":
        "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6",
    "sklearn/datasets/images/china.jpg":
        "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29",
    "sklearn/datasets/images/flower.jpg":
        "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638",
    "matplotlib/mpl-data/sample_data/grace_hopper.jpg":
        "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
}


def run(cmd, cwd):
    print("+", " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.PIPE).stdout


def write_atomic(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def fetch_labels(dl):
    tgz = os.path.join(dl, MOBILENET_TGZ)
    if not os.path.exists(tgz):
        run(["npm", "pack", MOBILENET], cwd=dl)
    with tarfile.open(tgz) as t:
        js = t.extractfile(LABELS_MEMBER).read()
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "imagenet_classes.js")
        with open(p, "wb") as f:
            f.write(js)
        out = run(["node", "-e",
                   "const m=require(process.argv[1]).IMAGENET_CLASSES;"
                   "process.stdout.write(JSON.stringify(Array.from({length:1000},(_,i)=>m[i])))",
                   p], cwd=d)
    labels = json.loads(out)
    assert len(labels) == 1000 and all(isinstance(s, str) and s for s in labels)
    assert all("\n" not in s and s == s.strip() for s in labels)
    assert labels[281].startswith("tabby"), labels[281]
    assert labels[967] == "espresso", labels[967]
    write_atomic(os.path.join(ASSETS, "imagenet_classes.txt"),
                 ("\n".join(labels) + "\n").encode("utf-8"))
    print("labels: 1000 lines; [281]=%r [285]=%r [967]=%r" % (labels[281], labels[285], labels[967]))


def wheel_path(dl, requirement, pattern):
    wheels = glob.glob(os.path.join(dl, pattern))
    if not wheels:
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "-d", dl, requirement], cwd=dl)
        wheels = glob.glob(os.path.join(dl, pattern))
    if not wheels:
        raise SystemExit("no wheel matching %s in %s" % (pattern, dl))
    return sorted(wheels)[0]


def encode(raw, action):
    if action[0] == "copy":
        return raw
    im = Image.open(io.BytesIO(raw)).convert("RGB")
    if len(action) > 2:
        short = action[2]
        w, h = im.size
        if w <= h:
            size = (short, (h * short + w // 2) // w)
        else:
            size = ((w * short + h // 2) // h, short)
        im = im.resize(size, Image.LANCZOS, reducing_gap=None)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=action[1], subsampling="4:2:0", optimize=False,
            progressive=False)
    return buf.getvalue()


def fetch_images(dl):
    os.makedirs(IMAGES, exist_ok=True)
    total = 0
    zips = {}
    try:
        for req, pattern, member, dst, action in IMAGE_PLAN:
            if pattern not in zips:
                zips[pattern] = zipfile.ZipFile(wheel_path(dl, req, pattern))
            raw = zips[pattern].read(member)
            got = hashlib.sha256(raw).hexdigest()
            if got != SOURCE_SHA256[member]:
                raise SystemExit("%s: sha256 %s, expected %s" % (member, got,
                                                                  SOURCE_SHA256[member]))
            data = encode(raw, action)
            write_atomic(os.path.join(IMAGES, dst), data)
            total += len(data)
            w, h = Image.open(io.BytesIO(data)).size
            print("%-22s %8d B  %dx%d  sha256 %s" % (dst, len(data), w, h,
                                                     hashlib.sha256(data).hexdigest()))
    finally:
        for z in zips.values():
            z.close()
    print("assets/images total: %d B" % total)
    if total > MAX_IMAGES_BYTES:
        raise SystemExit("assets/images exceeds %d B" % MAX_IMAGES_BYTES)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--download-dir", help="download cache (default: a temp dir)")
    ap.add_argument("--only", choices=("labels", "images"),
                    help="fetch only the label list or only the photos (default: both)")
    args = ap.parse_args()

    def fetch(dl):
        if args.only in (None, "labels"):
            fetch_labels(dl)
        if args.only in (None, "images"):
            fetch_images(dl)

    if args.download_dir:
        os.makedirs(args.download_dir, exist_ok=True)
        fetch(os.path.abspath(args.download_dir))
    else:
        with tempfile.TemporaryDirectory() as dl:
            fetch(dl)


if __name__ == "__main__":
    main()
