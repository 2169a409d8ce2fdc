#!/usr/bin/env bash
# gpu-bench.sh — f8net's throughput comparison on a Linux machine with an NVIDIA GPU that has no
# Rust toolchain and no network (issue 6; ../shared/reference/WGPU.md §6–§7). It runs a prebuilt
# `f8net` binary, checks that a Vulkan driver for the GPU is present, runs `f8net bench` (device
# ceilings, int8 vs f32 kernels at ResNet-18/MobileNet-V2 shapes, EfficientNet-Lite0 at batch 1,
# 32 and 64) and, when PyTorch with CUDA is installed there, the same shapes through PyTorch, and
# writes one comparison table. Finishes within 8 minutes (every step has its own timeout).
#
# Usage: scripts/gpu-bench.sh [--out DIR] [--debs DIR] [--allow-software] [--quick] [F8NET_BINARY]
#   F8NET_BINARY      prebuilt binary (default: target/release/f8net)
#   --out DIR         output folder (default: target/gpu-bench); files written there:
#                     comparison.md (the table), checks.txt (machine, driver, adapters),
#                     vulkaninfo.txt, f8net-bench.json, f8net-bench.md, torch.json, run.log
#   --debs DIR        Vulkan loader .debs unpacked into / when libvulkan.so.1 is missing
#                     (default: .gl; needs root)
#   --allow-software  accept a software adapter (lavapipe/llvmpipe): proves the flow on a machine
#                     without a GPU; the bench then runs with --quick
#   --quick           pass --quick to f8net bench
# Exit status: 0 done; 2 no Vulkan loader, no NVIDIA driver or only a software adapter; 3 the
# bench failed or timed out.
#
# Preparing, on a machine with network and a Rust toolchain (once):
#   cargo build --release                    # target/release/f8net (the built-in model is inside;
#                                            # the float EfficientNet-Lite0 is read from
#                                            # assets/models when present, else its float twin)
#   # Vulkan loader for a GPU machine whose image lacks it (`ldconfig -p | grep libvulkan` empty),
#   # as /work/.library/device/README.md describes, in the repository root:
#   echo /.gl/ >>.git/info/exclude; mkdir -p .gl /tmp/amd64/partial
#   o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
#   apt-get $o update
#   (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
# Then copy the repository with target/release/f8net and .gl/ to the GPU machine (with the device
# tool: carry ["target/release/f8net", ".gl"]) and run, from the repository root:
#   scripts/gpu-bench.sh --out "$OUT"
# The script unpacks .gl/*.deb into / itself (`dpkg -x`, then `ldconfig`) only when the loader is
# missing. The NVIDIA ICD is looked for in the standard folders and in
# /usr/local/nvidia/share/vulkan/icd.d (then exported as VK_DRIVER_FILES).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/f8net
out=target/gpu-bench
debs=.gl
allow_software=0
quick=0
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --debs) debs=$2; shift 2 ;;
    --allow-software) allow_software=1; shift ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,37p' "$0"; exit 0 ;;
    -*) echo "gpu-bench: unknown option $1" >&2; exit 64 ;;
    *) bin=$1; shift ;;
  esac
done

limit=460 # seconds: 8 minutes minus a margin for writing the table
start=$SECONDS
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
checks=$out/checks.txt
log=$out/run.log
: >"$checks"
: >"$log"

say() { echo "gpu-bench: $*" | tee -a "$checks" >&2; }
die() {
  local code=$1; shift
  echo "gpu-bench: FAILED: $*" | tee -a "$checks" >&2
  exit "$code"
}
# Seconds a step may take: its own cap, never past the overall limit.
budget() {
  local left=$((limit - (SECONDS - start)))
  if [ "$left" -lt "$1" ]; then echo $((left > 5 ? left : 5)); else echo "$1"; fi
}

[ -x "$bin" ] || die 2 "no f8net binary at $bin (build it with cargo build --release elsewhere and copy it)"
say "binary: $bin ($("$bin" --version 2>/dev/null || echo '?'))"
say "date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(uname -srm)"
if command -v nvidia-smi >/dev/null; then
  gpu_line=$(timeout "$(budget 20)" nvidia-smi --query-gpu=name,driver_version,memory.total \
    --format=csv,noheader 2>&1 | head -n 4 || true)
  say "nvidia-smi: ${gpu_line:-no answer}"
else
  say "nvidia-smi: not installed"
fi

# --- Vulkan loader -----------------------------------------------------------------------------
# (grep reads a copy of the linker cache: `ldconfig -p | grep -q` can die of SIGPIPE under pipefail)
has_lib() { grep -q "$1" <<<"$(ldconfig -p)"; }
if ! has_lib 'libvulkan\.so\.1'; then
  say "no libvulkan.so.1 in the linker cache: unpacking the loader from $debs/*.deb"
  shopt -s nullglob
  pkgs=("$debs"/*.deb)
  shopt -u nullglob
  [ ${#pkgs[@]} -gt 0 ] || die 2 "no Vulkan loader and no .debs in $debs (see the header of $0)"
  [ "$(id -u)" = 0 ] || die 2 "unpacking the Vulkan loader into / needs root"
  for f in "${pkgs[@]}"; do dpkg -x "$f" /; done
  ldconfig
  has_lib 'libvulkan\.so\.1' || die 2 "libvulkan.so.1 still missing after unpacking $debs"
fi
say "loader: $(grep -m1 'libvulkan\.so\.1' <<<"$(ldconfig -p)" | sed 's/^[[:space:]]*//')"

# --- NVIDIA ICD ----------------------------------------------------------------------------------
icd=""
if [ -n "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
  say "ICD from the environment: VK_DRIVER_FILES=${VK_DRIVER_FILES:-} VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-}"
else
  for f in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
    /usr/local/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json \
    /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$f" ]; then icd=$f; break; fi
  done
  if [ -n "$icd" ]; then
    say "NVIDIA ICD: $icd"
    case $icd in
      /usr/local/nvidia/*) export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd
        say "exported VK_DRIVER_FILES=$icd (not a folder the loader searches)" ;;
    esac
    lib=$(sed -n 's/.*"library_path"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$icd" | head -n 1)
    if [ -n "$lib" ] && [ "${lib#/}" = "$lib" ] && ! has_lib "$lib"; then
      for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
        [ -e "$d/$lib" ] && export LD_LIBRARY_PATH=$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
      done
      say "ICD library $lib is not in the linker cache; LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
    fi
  else
    say "no NVIDIA ICD json found (checked /usr/share, /etc, /usr/local/share, /usr/local/nvidia)"
  fi
fi

# --- vulkaninfo (WGPU.md §7.1) -----------------------------------------------------------------
if command -v vulkaninfo >/dev/null; then
  timeout "$(budget 25)" vulkaninfo >"$out/vulkaninfo.txt" 2>&1 || true
  grep -E 'deviceName|driverName|driverInfo|integerDotProduct4x8BitPacked(Signed|Mixed)|maxComputeSharedMemorySize|maxStorageBufferRange|timestampPeriod|subgroupSize +=' \
    "$out/vulkaninfo.txt" | sed 's/^[[:space:]]*//; s/[[:space:]]\+/ /g' | sort -u | tee -a "$checks" >&2 || true
else
  say "vulkaninfo: not installed (the adapter listing below is the check)"
fi

# --- adapters ------------------------------------------------------------------------------------
adapters=$(timeout "$(budget 30)" "$bin" adapters 2>>"$log" || true)
printf 'adapters:\n%s\n' "${adapters:-(none)}" | tee -a "$checks" >&2
hw=$(printf '%s\n' "$adapters" | grep -vi -e 'llvmpipe' -e '(Cpu,' | grep -E '^[0-9]+:' || true)
software=0
if [ -z "$hw" ]; then
  [ "$allow_software" = 1 ] || die 2 "only a software Vulkan adapter (llvmpipe) is visible: the NVIDIA Vulkan driver is missing or not loadable (see checks above; try VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json)"
  software=1
  say "WARNING: no hardware adapter; continuing on the software adapter (--allow-software)"
elif [ -z "${F8NET_ADAPTER:-}" ]; then
  pick=$(grep -i -m1 nvidia <<<"$hw" || head -n 1 <<<"$hw")
  export F8NET_ADAPTER=${pick%%:*}
  say "adapter: $pick (F8NET_ADAPTER=$F8NET_ADAPTER)"
fi

# --- f8net bench ---------------------------------------------------------------------------------
args=(bench --json --md "$out/f8net-bench.md")
if [ "$software" = 1 ] || [ "$quick" = 1 ]; then
  args+=(--quick)
else
  args+=(--model-batches '1,32,64')
fi
say "running: $bin ${args[*]}"
rc=0
timeout "$(budget 300)" "$bin" "${args[@]}" >"$out/f8net-bench.json" 2>>"$log" || rc=$?
[ "$rc" = 0 ] || die 3 "f8net bench exited with $rc (124 = timed out); see $log"
if grep -q '"software": true' "$out/f8net-bench.json" && [ "$allow_software" != 1 ]; then
  die 2 "f8net bench ran on a software adapter; set F8NET_ADAPTER to the GPU"
fi

# --- PyTorch on the same shapes ------------------------------------------------------------------
torch_md=""
if command -v python3 >/dev/null &&
  timeout "$(budget 60)" python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>>"$log"; then
  cat >"$tmp/torch_bench.py" <<'PY'
# The f8net bench shapes through PyTorch (CUDA): conv2d channels-last in fp32 (TF32 off), TF32,
# fp16 and bf16; torch._int_mm int8 GEMM on each layer's GEMM shape; EfficientNet-Lite0 with BN
# folded (conv + bias + ReLU6, the work f8net does) at the same batches. CUDA-event timing,
# median of 7 rounds after warm-up. Prints a markdown table; writes torch.json.
import json, statistics, sys
import torch
import torch.nn as nn
import torch.nn.functional as F

bench = json.load(open(sys.argv[1]))
out_json = sys.argv[2]
dev = "cuda"
torch.backends.cudnn.benchmark = True

def timed(fn, target=0.02, reps=7):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); fn(); e.record(); torch.cuda.synchronize()
    iters = max(1, min(200, int(target / max(s.elapsed_time(e) / 1e3, 1e-6))))
    ts = []
    for _ in range(reps):
        s.record()
        for _ in range(iters):
            fn()
        e.record(); torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) / 1e3 / iters)
    return statistics.median(ts)

def set_tf32(on):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on

DTYPES = [("fp32", torch.float32, False), ("tf32", torch.float32, True),
          ("fp16", torch.float16, False), ("bf16", torch.bfloat16, False)]

def layer_fn(r, dtype):
    b, c, n, k, hw, s = r["batch"], r["cin"], r["cout"], r["k"], r["hw"], r["stride"]
    if r["op"] == "conv" and hw == 1 and k == 1:
        x = torch.randn(b, c, device=dev, dtype=dtype)
        w = torch.randn(n, c, device=dev, dtype=dtype)
        return lambda: F.linear(x, w)
    groups = c if r["op"] == "depthwise" else 1
    x = torch.randn(b, c, hw, hw, device=dev, dtype=dtype).to(memory_format=torch.channels_last)
    w = torch.randn(n, c // groups, k, k, device=dev, dtype=dtype).to(memory_format=torch.channels_last)
    return lambda: F.conv2d(x, w, stride=s, padding=k // 2, groups=groups)

def int_mm_fn(r):
    if r["op"] != "conv":
        return None, ""
    oh = (r["hw"] + 2 * (r["k"] // 2) - r["k"]) // r["stride"] + 1
    m, kk, n = r["batch"] * oh * oh, r["k"] * r["k"] * r["cin"], r["cout"]
    up8 = lambda v: (v + 7) // 8 * 8
    mp, kp, np_ = max(m, 32), up8(kk), up8(n)
    a = torch.randint(-127, 128, (mp, kp), device=dev, dtype=torch.int8)
    for b in (torch.randint(-127, 128, (np_, kp), device=dev, dtype=torch.int8).t(),
              torch.randint(-127, 128, (kp, np_), device=dev, dtype=torch.int8)):
        try:
            torch._int_mm(a, b)
            return (lambda a=a, b=b: torch._int_mm(a, b)), ("*" if mp != m else "")
        except Exception:
            pass
    return None, ""

def mbconv(cin, cout, k, s, e):
    mid = cin * e
    f = []
    if e != 1:
        f += [nn.Conv2d(cin, mid, 1), nn.ReLU6()]
    f += [nn.Conv2d(mid, mid, k, s, k // 2, groups=mid), nn.ReLU6(), nn.Conv2d(mid, cout, 1)]
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.f, self.res = nn.Sequential(*f), s == 1 and cin == cout
        def forward(self, x):
            y = self.f(x)
            return x + y if self.res else y
    return Block()

def efficientnet_lite0():
    stages = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
              (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
    layers = [nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU6()]
    for reps, k, s, e, cin, cout in stages:
        for i in range(reps):
            layers.append(mbconv(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e))
    layers += [nn.Conv2d(320, 1280, 1), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(1280, 1000)]
    return nn.Sequential(*layers).eval()

res = {"torch": torch.__version__, "cuda": torch.version.cuda,
       "gpu": torch.cuda.get_device_name(0), "kernels": [], "models": []}
with torch.inference_mode():
    for r in bench["kernels"]:
        row = {"name": r["name"], "batch": r["batch"]}
        ops = 2.0 * r["macs"]
        for name, dt, tf32 in DTYPES:
            set_tf32(tf32)
            row[name] = ops / timed(layer_fn(r, dt)) / 1e9
        set_tf32(False)
        fn, note = int_mm_fn(r)
        row["int8_mm"] = ops / timed(fn) / 1e9 if fn else None
        row["int8_note"] = note
        res["kernels"].append(row)
    for r in bench["models"]:
        row = {"name": r["name"], "batch": r["batch"]}
        for name, dt, tf32 in DTYPES:
            set_tf32(tf32)
            m = efficientnet_lite0().to(dev, dt).to(memory_format=torch.channels_last)
            x = torch.randn(r["batch"], 3, 224, 224, device=dev, dtype=dt).to(memory_format=torch.channels_last)
            row[name] = r["batch"] / timed(lambda: m(x))
        set_tf32(False)
        res["models"].append(row)
json.dump(res, open(out_json, "w"), indent=1)

f8k = {(r["name"], r["batch"]): r for r in bench["kernels"]}
f8m = {(r["name"], r["batch"]): r for r in bench["models"]}
g = lambda v: "n/a" if v is None else f"{v:.1f}"
print(f"PyTorch {res['torch']} (CUDA {res['cuda']}) on {res['gpu']}\n")
if res["kernels"]:
    print("| kernel | batch | f8net int8 | f8net f32 | torch fp32 | torch tf32 | torch fp16 | torch bf16 | torch int8 GEMM |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in res["kernels"]:
        f = f8k[(t["name"], t["batch"])]
        print(f"| {t['name']} | {t['batch']} | {f['int8_gops']:.1f} | {f['f32_gops']:.1f} | {g(t['fp32'])} | "
              f"{g(t['tf32'])} | {g(t['fp16'])} | {g(t['bf16'])} | {g(t['int8_mm'])}{t['int8_note']} |")
    print("\nGOPS (2 ops per MAC). torch int8 GEMM: torch._int_mm on the layer's GEMM shape "
          "(M = batch·OH·OW, K = k·k·cin, N = cout; im2col not counted; * = M padded to 32); "
          "depthwise has none.\n")
if res["models"]:
    print("| model | batch | f8net int8 | f8net f32 | torch fp32 | torch tf32 | torch fp16 | torch bf16 | f8net int8 / torch fp32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in res["models"]:
        f = f8m[(t["name"], t["batch"])]
        print(f"| {t['name']} | {t['batch']} | {f['int8_images_per_s']:.1f} | {f['f32_images_per_s']:.1f} | "
              f"{t['fp32']:.1f} | {t['tf32']:.1f} | {t['fp16']:.1f} | {t['bf16']:.1f} | "
              f"{f['int8_images_per_s'] / t['fp32']:.2f}× |")
    print("\nimages/s; PyTorch runs EfficientNet-Lite0 with BN folded (conv + bias + ReLU6), "
          "channels-last, eager, inference mode.")
PY
  say "running the same shapes through PyTorch"
  rc=0
  timeout "$(budget 130)" python3 "$tmp/torch_bench.py" "$out/f8net-bench.json" "$out/torch.json" \
    >"$tmp/torch.md" 2>>"$log" || rc=$?
  if [ "$rc" = 0 ]; then
    torch_md=$(cat "$tmp/torch.md")
  else
    torch_md="PyTorch comparison failed (exit $rc, 124 = timed out); see run.log."
  fi
else
  torch_md="PyTorch with CUDA is not installed here: no PyTorch comparison."
fi

# --- the comparison table ------------------------------------------------------------------------
{
  echo "# f8net throughput: $(date -u '+%Y-%m-%d')"
  echo
  echo '```'
  cat "$checks"
  echo '```'
  echo
  echo "## f8net bench"
  echo
  cat "$out/f8net-bench.md"
  echo
  echo "## Against PyTorch on the same GPU"
  echo
  echo "$torch_md"
  echo
  echo "script wall time: $((SECONDS - start)) s"
} >"$tmp/comparison.md"
mv "$tmp/comparison.md" "$out/comparison.md"
cat "$out/comparison.md"
say "wrote $out/comparison.md in $((SECONDS - start)) s"
