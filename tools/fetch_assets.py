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
All from the scikit-image 0.26.0 wheel (skimage/data/). Re-encoded files carry no EXIF/ICC/XMP
(pixels are treated as sRGB). Only CC0 / public-domain photographs are used.

Requirements: python3 with Pillow (pip install pillow), pip, npm and node on PATH.
Usage (from the repository root):
    python3 tools/fetch_assets.py                    # downloads into a temp dir
    python3 tools/fetch_assets.py --download-dir DIR # keep / reuse the downloads in DIR
      (DIR may already hold scikit_image-0.26.0-*.whl and tensorflow-models-mobilenet-2.1.1.tgz)

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
MOBILENET = "@tensorflow-models/mobilenet@2.1.1"
MOBILENET_TGZ = "tensorflow-models-mobilenet-2.1.1.tgz"
LABELS_MEMBER = "package/dist/imagenet_classes.js"

MAX_IMAGES_BYTES = 1_500_000
# name in skimage/data -> (output name, action)
IMAGE_PLAN = [
    ("chelsea.png", "chelsea.jpg", ("jpeg", 92)),
    ("coffee.png", "coffee.jpg", ("jpeg", 92)),
    ("rocket.jpg", "rocket.jpg", ("copy",)),
    ("astronaut.png", "astronaut.png", ("copy",)),
    ("hubble_deep_field.jpg", "hubble_deep_field.jpg", ("jpeg", 90)),
]


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


def fetch_images(dl):
    wheels = glob.glob(os.path.join(dl, SKIMAGE_GLOB))
    if not wheels:
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "-d", dl, SKIMAGE], cwd=dl)
        wheels = glob.glob(os.path.join(dl, SKIMAGE_GLOB))
    os.makedirs(IMAGES, exist_ok=True)
    total = 0
    with zipfile.ZipFile(sorted(wheels)[0]) as z:
        for src, dst, action in IMAGE_PLAN:
            raw = z.read("skimage/data/" + src)
            if action[0] == "copy":
                data = raw
            else:
                im = Image.open(io.BytesIO(raw)).convert("RGB")
                buf = io.BytesIO()
                im.save(buf, "JPEG", quality=action[1], subsampling="4:2:0", optimize=False,
                        progressive=False)
                data = buf.getvalue()
            write_atomic(os.path.join(IMAGES, dst), data)
            total += len(data)
            w, h = Image.open(io.BytesIO(data)).size
            print("%-22s %8d B  %dx%d  sha256 %s" % (dst, len(data), w, h,
                                                     hashlib.sha256(data).hexdigest()))
    print("assets/images total: %d B" % total)
    if total > MAX_IMAGES_BYTES:
        raise SystemExit("assets/images exceeds %d B" % MAX_IMAGES_BYTES)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--download-dir", help="download cache (default: a temp dir)")
    args = ap.parse_args()
    if args.download_dir:
        os.makedirs(args.download_dir, exist_ok=True)
        dl = os.path.abspath(args.download_dir)
        fetch_labels(dl)
        fetch_images(dl)
    else:
        with tempfile.TemporaryDirectory() as dl:
            fetch_labels(dl)
            fetch_images(dl)


if __name__ == "__main__":
    main()
