// fake_quant_rows.wgsl — per-channel weight formats of F8Net training (`WeightFormat::PerChannel`):
// the σ of every output channel's row of W̃ and fix_quant of each row at its own FL. Spec:
// src/reference/fake_quant.rs (`fix_quant_rows`) and `fraclen::unbiased_std`; launcher:
// src/ops/fake_quant_rows.rs. One Params for both entry points; the layouts in weight_layout.wgsl
// (appended).
//
// Weights are padded f32 rows [rows][4·C4] as in fake_quant.wgsl (element k is padding when
// k % (4·C4) ≥ c), and each output channel's values follow the weight layout of fold.wgsl:
//   arrangement 0: value j of channel ch at ch·per + j (dense OHWI [kh][kw][4·C4in] rows);
//   arrangement 1: value j of channel ch at j·CP + ch  (depthwise [kh][kw][CP]).
//
//   row_stats:       w(0) → out(1) f32 [2][CP] = [Σx | Σ(x − mean)²] of each channel's `count`
//                    live values (two passes, mean = Σx/count in f32); one workgroup per channel,
//                    fixed-order trees (no atomics), deterministic. Padding channels untouched.
//   fake_quant_rows: x(0) scales(1) f32 [2][CP] = [2^fl | 2^−fl] per channel → out(2) values,
//                    mask(3) u32 [rows][C4] (byte l = 1 if lane l passes). Signed codes −127..127:
//                    r = round_half_even(x·2^fl); mask = −127 < r < 127 (before the clamp, NaN → 0);
//                    value = clamp(r)·2^−fl, NaN → 0, code 0 → +0.0. Padding lanes written 0.

const WG: u32 = 256u;
const WG_ROW: u32 = 64u;

struct Params {
    words: u32,       // rows·C4
    c4: u32,
    c: u32,           // logical lanes per row
    channels: u32,    // output channels
    cp: u32,          // 4·ceil(channels/4)
    per: u32,         // values per channel in the layout (padding lanes included)
    arrangement: u32, // 0 rows, 1 depthwise
    count: u32,       // live values per channel
}

@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p2: Params;

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> scales: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> mask_out: array<u32>;
@group(0) @binding(4) var<uniform> p4: Params;

var<workgroup> red: array<f32, WG_ROW>;

// Offset of value j of channel ch, and the channel of element k (weight_layout.wgsl).
fn weight_at(q: Params, ch: u32, j: u32) -> u32 {
    return layout_offset(q.arrangement, q.per, q.cp, ch, j);
}

fn channel_of(q: Params, k: u32) -> u32 {
    return layout_channel(q.arrangement, q.per, q.cp, k);
}

fn is_live(q: Params, k: u32) -> bool {
    return k % (4u * q.c4) < q.c;
}

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Fixed-order tree over the workgroup; every invocation gets the total.
fn reduce(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG_ROW / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(WG_ROW)
fn row_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = p2;
    let ch = wid.x;
    var s = 0.0;
    for (var j = lid; j < q.per; j += WG_ROW) {
        let k = weight_at(q, ch, j);
        if (is_live(q, k)) {
            s += w[k];
        }
    }
    let sum = reduce(lid, s);
    let mean = sum / f32(q.count);
    var ss = 0.0;
    for (var j = lid; j < q.per; j += WG_ROW) {
        let k = weight_at(q, ch, j);
        if (is_live(q, k)) {
            let d = w[k] - mean;
            ss += d * d;
        }
    }
    let total = reduce(lid, ss);
    if (lid == 0u) {
        out[ch] = sum;
        out[q.cp + ch] = total;
    }
}

@compute @workgroup_size(WG)
fn fake_quant_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = p4;
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= q.words) {
        return;
    }
    let lo = f32(code_lo(1u));
    let hi = f32(code_hi(1u));
    let x = src[i];
    var val = vec4<f32>(0.0);
    var bits = 0u;
    for (var l = 0u; l < 4u; l++) {
        let k = 4u * i + l;
        if (!is_live(q, k)) {
            continue;
        }
        let ch = channel_of(q, k);
        let nan = is_nan(x[l]);
        let r = round(x[l] * scales[ch]);
        // As fake_quant.wgsl: an integer select keeps code 0 at +0.0.
        let code = i32(clamp(r, lo, hi));
        let v = bitcast<u32>(f32(code) * scales[q.cp + ch]);
        val[l] = bitcast<f32>(select(v, 0u, code == 0 || nan));
        if (!nan && r > lo && r < hi) {
            bits |= 1u << (8u * l);
        }
    }
    dst[i] = val;
    mask_out[i] = bits;
}
