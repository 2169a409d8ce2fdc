#!/usr/bin/env python3
"""NumPy float32 reference forward of EfficientNet-Lite0, preprocessing, and golden fixtures.

Model file: assets/models/efficientnet_lite0.f32.safetensors (tools/convert_efficientnet_lite0.py),
conv weights OIHW. Requirements: numpy; Pillow only for decoding images (pip install numpy pillow).

Network (ImageNet-1k, 224x224 input):
  input   uint8 RGB HWC 224x224x3, x_f = (x - 127) / 128
  stem    conv3x3 s2 3->32, BN, ReLU6
  blocks  16 MBConv: [1x1 expand conv, BN, ReLU6] (absent when expand ratio is 1, block 0),
          depthwise kxk stride s, BN, ReLU6, 1x1 project conv, BN (no activation),
          + block input when s == 1 and in == out. No squeeze-excite, no swish.
          stage (repeats, k, s, expand, in, out):
            (1,3,1,1,32,16) (2,3,2,6,16,24) (2,5,2,6,24,40) (3,3,2,6,40,80)
            (3,5,1,6,80,112) (4,5,2,6,112,192) (1,3,1,6,192,320)
          the stride applies to the first block of a stage only.
  head    conv1x1 320->1280, BN, ReLU6, global mean over HxW, fc 1280->1000 (logits).
  convs have no bias; BN (inference): y = (x - running_mean) / sqrt(running_var + 1e-3) * w + b.
  padding is TF "SAME": out = ceil(H/s), pad = max((out-1)*s + k - H, 0), top/left = pad//2,
  bottom/right = pad - pad//2 (stride 2 is asymmetric: k3@224 -> (0,1), k5@56 -> (1,2)).

Preprocessing (preprocess_image):
  Pillow decode, .convert("RGB") (no EXIF orientation applied), resize so the shorter side is 256
  with Image.BILINEAR, reducing_gap=None (Pillow's bilinear is a triangle filter whose support is
  scaled by the downscale factor, i.e. antialiased), the longer side becomes
  (long * 256 + short // 2) // short (round half up), then centre crop 224x224 at
  left = (w - 224) // 2, top = (h - 224) // 2. Result: uint8 HWC, row-major, RGB.

Usage (from the repository root):
  python3 tools/reference_forward.py classify IMG_OR_RGB [...]   # .rgb = raw 224*224*3 uint8
  python3 tools/reference_forward.py preprocess IMAGE OUT.rgb
  python3 tools/reference_forward.py fixtures    # rewrite tests/fixtures/{chelsea,coffee}_224.rgb
                                                 #   and efficientnet_lite0_golden.json
  common options: --model PATH --labels PATH
"""

import argparse
import collections
import hashlib
import json
import os
import struct
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(REPO_ROOT, "assets", "models", "efficientnet_lite0.f32.safetensors")
DEFAULT_LABELS = os.path.join(REPO_ROOT, "assets", "imagenet_classes.txt")
FIXTURES = os.path.join(REPO_ROOT, "tests", "fixtures")
GOLDEN_INPUTS = [("chelsea", "assets/images/chelsea.jpg"), ("coffee", "assets/images/coffee.jpg")]

BN_EPS = 1e-3
INPUT_SIZE = 224
RESIZE_SHORTER = 256
# (repeats, kernel, stride, expand_ratio, in_ch, out_ch)
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]


def block_configs():
    """List of (kernel, stride, expand_ratio, in_ch, out_ch) for the 16 blocks."""
    out = []
    for reps, k, s, e, cin, cout in STAGES:
        for r in range(reps):
            out.append((k, s if r == 0 else 1, e, cin if r == 0 else cout, cout))
    return out


# ------------------------------------------------------------------------------------------
# I/O
# ------------------------------------------------------------------------------------------

def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError("%s: dtype %s, expected F32" % (name, info["dtype"]))
        s, e = info["data_offsets"]
        out[name] = np.frombuffer(data, dtype="<f4", count=(e - s) // 4,
                                  offset=8 + n + s).reshape(info["shape"]).astype(np.float32)
    return meta, out


def load_labels(path):
    with open(path, encoding="utf-8") as f:
        labels = f.read().split("\n")[:1000]
    assert len(labels) == 1000
    return labels


def preprocess_image(path):
    """Decode, resize shorter side to 256 (bilinear), centre-crop 224. -> uint8 (224,224,3)."""
    from PIL import Image
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        if w <= h:
            nw, nh = RESIZE_SHORTER, (h * RESIZE_SHORTER + w // 2) // w
        else:
            nw, nh = (w * RESIZE_SHORTER + h // 2) // h, RESIZE_SHORTER
        im = im.resize((nw, nh), resample=Image.BILINEAR, reducing_gap=None)
        left, top = (nw - INPUT_SIZE) // 2, (nh - INPUT_SIZE) // 2
        im = im.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
        a = np.asarray(im, dtype=np.uint8)
    assert a.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    return np.ascontiguousarray(a)


def load_input(path):
    """A .rgb file (raw 224*224*3 uint8 HWC) or any image Pillow can decode."""
    if path.endswith(".rgb"):
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size != INPUT_SIZE * INPUT_SIZE * 3:
            raise ValueError("%s: %d bytes, expected %d" % (path, raw.size, INPUT_SIZE ** 2 * 3))
        return raw.reshape(INPUT_SIZE, INPUT_SIZE, 3)
    return preprocess_image(path)


# ------------------------------------------------------------------------------------------
# Layers (HWC float32, single image)
# ------------------------------------------------------------------------------------------

def same_pad(size, k, s):
    out = -(-size // s)
    pad = max((out - 1) * s + k - size, 0)
    return out, pad // 2, pad - pad // 2


def pad_same(x, k, s):
    h, w, _ = x.shape
    oh, pt, pb = same_pad(h, k, s)
    ow, pl, pr = same_pad(w, k, s)
    return np.pad(x, ((pt, pb), (pl, pr), (0, 0))), oh, ow


def conv2d(x, w_oihw, s):
    """Dense conv, TF-SAME padding, no bias. x (H,W,I), w (O,I,k,k)."""
    o, i, k, _ = w_oihw.shape
    xp, oh, ow = pad_same(x, k, s)
    cols = np.empty((oh, ow, k, k, i), dtype=np.float32)
    for dy in range(k):
        for dx in range(k):
            cols[:, :, dy, dx, :] = xp[dy:dy + s * (oh - 1) + 1:s, dx:dx + s * (ow - 1) + 1:s, :]
    wm = w_oihw.transpose(2, 3, 1, 0).reshape(k * k * i, o)   # (ky, kx, i) x o
    return (cols.reshape(oh * ow, k * k * i) @ wm).reshape(oh, ow, o)


def conv1x1(x, w_oihw):
    o, i = w_oihw.shape[:2]
    h, w, _ = x.shape
    return (x.reshape(h * w, i) @ w_oihw.reshape(o, i).T).reshape(h, w, o)


def depthwise(x, w_c1kk, s):
    c, _, k, _ = w_c1kk.shape
    xp, oh, ow = pad_same(x, k, s)
    acc = np.zeros((oh, ow, c), dtype=np.float32)
    for dy in range(k):
        for dx in range(k):
            acc += xp[dy:dy + s * (oh - 1) + 1:s, dx:dx + s * (ow - 1) + 1:s, :] * w_c1kk[:, 0, dy, dx]
    return acc


def batchnorm(x, p, prefix):
    scale = p[prefix + ".weight"] / np.sqrt(p[prefix + ".running_var"] + np.float32(BN_EPS))
    shift = p[prefix + ".bias"] - p[prefix + ".running_mean"] * scale
    return x * scale.astype(np.float32) + shift.astype(np.float32)


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def forward(p, rgb_u8):
    """rgb_u8: uint8 (224,224,3) HWC RGB. Returns float32 logits (1000,)."""
    assert rgb_u8.shape == (INPUT_SIZE, INPUT_SIZE, 3) and rgb_u8.dtype == np.uint8
    x = (rgb_u8.astype(np.float32) - np.float32(127.0)) / np.float32(128.0)
    x = relu6(batchnorm(conv2d(x, p["_conv_stem.weight"], 2), p, "_bn0"))
    for b, (k, s, e, cin, cout) in enumerate(block_configs()):
        pre = "_blocks.%d." % b
        inp = x
        if e != 1:
            x = relu6(batchnorm(conv1x1(x, p[pre + "_expand_conv.weight"]), p, pre + "_bn0"))
        dw = p[pre + "_depthwise_conv.weight"]
        assert dw.shape == (cin * e, 1, k, k), (b, dw.shape)
        x = relu6(batchnorm(depthwise(x, dw, s), p, pre + "_bn1"))
        x = batchnorm(conv1x1(x, p[pre + "_project_conv.weight"]), p, pre + "_bn2")
        assert x.shape[2] == cout
        if s == 1 and cin == cout:
            x = x + inp
    x = relu6(batchnorm(conv1x1(x, p["_conv_head.weight"]), p, "_bn1"))
    x = x.mean(axis=(0, 1), dtype=np.float32)
    return (p["_fc.weight"] @ x + p["_fc.bias"]).astype(np.float32)


def softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def top5(logits):
    probs = softmax(logits)
    idx = np.argsort(-probs, kind="stable")[:5]
    return [(int(i), float(probs[i])) for i in idx]


# ------------------------------------------------------------------------------------------

def f32(v):
    """Shortest decimal that round-trips to the same float32 (parse as f32 in Rust)."""
    return float(str(np.float32(v)))


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_atomic(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def cmd_fixtures(args, params, meta, labels):
    import PIL
    cases = []
    for name, src in GOLDEN_INPUTS:
        rgb = preprocess_image(os.path.join(REPO_ROOT, src))
        rel = "tests/fixtures/%s_224.rgb" % name
        write_atomic(os.path.join(REPO_ROOT, rel), rgb.tobytes())
        logits = forward(params, rgb)
        t5 = top5(logits)
        cases.append(collections.OrderedDict([
            ("name", name),
            ("source_image", src),
            ("source_sha256", sha256_file(os.path.join(REPO_ROOT, src))),
            ("rgb", rel),
            ("rgb_sha256", hashlib.sha256(rgb.tobytes()).hexdigest()),
            ("shape", [INPUT_SIZE, INPUT_SIZE, 3]),
            ("top1", t5[0][0]),
            ("top5", [collections.OrderedDict([("index", i), ("prob", round(pr, 7)),
                                               ("logit", f32(logits[i])), ("label", labels[i])])
                      for i, pr in t5]),
            ("logits", [f32(v) for v in logits]),
        ]))
        print("%-8s %s" % (name, ", ".join("%d %s (%.4f)" % (i, labels[i], pr) for i, pr in t5)))
    golden = collections.OrderedDict([
        ("model", os.path.relpath(args.model, REPO_ROOT)),
        ("model_sha256", sha256_file(args.model)),
        ("model_metadata", meta),
        ("generator", "tools/reference_forward.py fixtures"),
        ("numpy_version", np.__version__),
        ("pillow_version", PIL.__version__),
        ("input_layout", "uint8 RGB HWC 224x224x3 row-major; network input (x-127)/128"),
        ("preprocess", "Pillow decode -> RGB; resize shorter side to 256 (long side "
                       "(long*256+short//2)//short), Image.BILINEAR, reducing_gap=None; centre "
                       "crop 224 at left=(w-224)//2, top=(h-224)//2"),
        ("forward", "float32 NumPy; TF-SAME padding; BN eps 1e-3; ReLU6; residual when "
                    "stride 1 and in==out; head 1x1->1280, BN, ReLU6, mean, fc"),
        ("softmax", "float64 softmax over the float32 logits"),
        ("cases", cases),
    ])
    # pretty-print, but keep each 1000-entry logit array on a single line
    placeholders = {}
    for case in cases:
        key = "@@LOGITS_%s@@" % case["name"]
        placeholders[key] = json.dumps(case["logits"])
        case["logits"] = key
    text = json.dumps(golden, indent=1, ensure_ascii=False)
    for key, arr in placeholders.items():
        text = text.replace(json.dumps(key), arr)
        for case in cases:
            if case["logits"] == key:
                case["logits"] = json.loads(arr)
    text += "\n"
    assert json.loads(text) == json.loads(json.dumps(golden))
    write_atomic(os.path.join(FIXTURES, "efficientnet_lite0_golden.json"), text.encode("utf-8"))
    ok_c = cases[0]["top1"] in range(281, 286)
    ok_k = cases[1]["top1"] in (967, 968, 504)
    print("chelsea top-1 in 281..285: %s; coffee top-1 in {967,968,504}: %s" % (ok_c, ok_k))
    if not (ok_c and ok_k):
        raise SystemExit("golden sanity check failed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--labels", default=DEFAULT_LABELS)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("classify")
    c.add_argument("inputs", nargs="+")
    pp = sub.add_parser("preprocess")
    pp.add_argument("image")
    pp.add_argument("out")
    sub.add_parser("fixtures")
    args = ap.parse_args()

    if args.cmd == "preprocess":
        write_atomic(os.path.abspath(args.out), preprocess_image(args.image).tobytes())
        return
    meta, params = load_safetensors(args.model)
    labels = load_labels(args.labels)
    if args.cmd == "fixtures":
        cmd_fixtures(args, params, meta, labels)
        return
    for path in args.inputs:
        t5 = top5(forward(params, load_input(path)))
        print("%s: %s" % (path, ", ".join("%d %s (%.4f)" % (i, labels[i], pr) for i, pr in t5)))


if __name__ == "__main__":
    main()
