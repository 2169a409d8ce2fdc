#!/usr/bin/env bash
# Measures float-vs-fixed-point agreement of EfficientNet-Lite0 under each FL scheme on the
# project's evaluation set (assets/eval), calibrated on assets/calib. Writes a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/f8net
float=assets/models/efficientnet_lite0.f32.safetensors
out=${1:-/dev/stdout}
tmp=$(mktemp -d)
run() {
  local name=$1; shift
  $bin quantize $float --calib assets/calib --out "$tmp/m.safetensors" "$@" >/dev/null 2>&1
  local r
  r=$($bin compare assets/eval --float $float --model "$tmp/m.safetensors" 2>/dev/null)
  local t5 c1 t1
  t5=$(echo "$r" | grep 'top-5' | sed 's/.*= //')
  c1=$(echo "$r" | grep 'where float' | sed 's/.*: //')
  t1=$(echo "$r" | grep '^top-1 agreement:' | sed 's/.*: //')
  echo "| $name | \`$*\` | $t5 | $c1 | $t1 |"
}
{
  echo "| scheme | quantize options | float top-1 in fixed top-5 | top-1 agree (float p ≥ 0.5) | top-1 agree |"
  echo "|---|---|---|---|---|"
  run "paper: per-layer σ rule" --weights per-layer --weight-fl std --act-fl std --pact off --bias-correction off
  run "per-layer grid search" --weights per-layer --weight-fl grid --act-fl grid --pact off --bias-correction off
  run "per-channel weight FL 0..15" --weights per-channel --pact off --bias-correction off
  run "+ bias correction" --weights per-channel --pact off --bias-correction on
  run "+ PACT α=6 (built-in)" --weights per-channel --pact on --bias-correction on
  run "per-channel + PACT, no bias correction" --weights per-channel --pact on --bias-correction off
} > "$out"
rm -rf "$tmp"
