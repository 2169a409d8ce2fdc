#!/usr/bin/env python3
"""Make the committed Fashion-MNIST subset (assets/data/fashion-mnist-subset/) from the full set.

Reads the four original IDX gzip files of the Debian package `dataset-fashion-mnist`
(/usr/share/datasets/fashion-mnist/, or --src DIR), checks their headers, and keeps, in file
order, the first PER_CLASS images of every class: 60 per class from the training set (600 images)
and 20 per class from the test set (200 images). The order of the kept images is their order in
the original file, so the subset is class-balanced but not sorted by class.

Output: the same IDX format and file names (big-endian u32 magic 0x00000803 / 0x00000801, counts,
28, 28, then u8 pixels / u8 labels), gzip level 9 with mtime 0 and no file name, so the files are
byte-for-byte reproducible. Standard library only (gzip, struct).

    python3 tools/make_fmnist_subset.py [--src DIR] [--out DIR] [--train-per-class 60]
                                        [--test-per-class 20]
"""

import argparse
import gzip
import hashlib
import io
import os
import struct
import sys

CLASSES = 10
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path, magic, ndim):
    with gzip.open(path, "rb") as f:
        data = f.read()
    head = 4 + 4 * ndim
    if len(data) < head:
        sys.exit(f"{path}: shorter than its header")
    (m,) = struct.unpack(">I", data[:4])
    if m != magic:
        sys.exit(f"{path}: magic 0x{m:08x}, expected 0x{magic:08x}")
    dims = struct.unpack(">" + "I" * ndim, data[4:head])
    size = 1
    for d in dims:
        size *= d
    if len(data) != head + size:
        sys.exit(f"{path}: {len(data) - head} data bytes, header says {size}")
    return dims, data[head:]


def write_gz(path, payload):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as g:
        g.write(payload)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)
    return buf.getvalue()


def subset(src, out, split, per_class):
    img_name, lbl_name = FILES[split]
    (n, rows, cols), pixels = read_idx(os.path.join(src, img_name), 0x803, 3)
    (nl,), labels = read_idx(os.path.join(src, lbl_name), 0x801, 1)
    if n != nl:
        sys.exit(f"{split}: {n} images but {nl} labels")
    size = rows * cols
    counts = [0] * CLASSES
    keep = []
    for i, lab in enumerate(labels):
        if lab >= CLASSES:
            sys.exit(f"{split}: label {lab} at index {i} out of range")
        if counts[lab] < per_class:
            counts[lab] += 1
            keep.append(i)
        if len(keep) == per_class * CLASSES:
            break
    if len(keep) != per_class * CLASSES:
        sys.exit(f"{split}: only {counts} images per class")
    k = len(keep)
    img = struct.pack(">IIII", 0x803, k, rows, cols) + b"".join(
        pixels[i * size:(i + 1) * size] for i in keep)
    lbl = struct.pack(">II", 0x801, k) + bytes(labels[i] for i in keep)
    for name, payload in ((img_name, img), (lbl_name, lbl)):
        gz = write_gz(os.path.join(out, name), payload)
        print(f"{name}: {k} items, {len(gz)} bytes, sha256 {hashlib.sha256(gz).hexdigest()}")
    print(f"{split}: kept the first {per_class} of each class; last source index {keep[-1]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="assets/data/fashion-mnist-subset")
    ap.add_argument("--train-per-class", type=int, default=60)
    ap.add_argument("--test-per-class", type=int, default=20)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    subset(args.src, args.out, "train", args.train_per_class)
    subset(args.src, args.out, "test", args.test_per_class)


if __name__ == "__main__":
    main()
