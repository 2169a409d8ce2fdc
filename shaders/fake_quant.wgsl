// fake_quant.wgsl — F8Net fake quantization for training: fix_quant forward with its STE mask,
// the masked backward, and per-tensor statistics for the FL rule. Spec:
// src/reference/fake_quant.rs; launcher: src/ops/fake_quant.rs. One Params for all entry points.
//
// Tensors are padded f32 rows [rows][4·C4] (an NHWC tensor: rows = pixels; OHWI weights:
// rows = n·kh·kw, channels = cin); `words` = rows·C4; lanes with channel ≥ c are padding.
//
//   fake_quant:          src x → dst values, mask_out u32 [rows][C4] (byte l = 1 if lane l passes)
//                        r = round_half_even(x·2^fl) (floating: r = x·2^fl, not rounded);
//                        mask = lo < r < hi (strict, before the clamp; NaN → 0);
//                        value = i32(clamp(r)) · 2^−fl, NaN → 0 (floating: clamp(r)·2^−fl, NaN stays)
//   fake_quant_backward: src grad_out, mask_in → dst2 grad_in = grad_out · mask
//   tensor_stats:        bindings src x, dst partials, dst2 out (the same for both stages);
//                        stage 0: x → partials [groups + 1] vec4: per workgroup
//                        (Σd, Σd², min x, max x) with d = x − x[0] (the shift keeps Σd² − (Σd)²/N
//                        free of cancellation), then (x[0], 0, 0, 0);
//                        stage 1 (one workgroup): partials (`words` of them + the shift) →
//                        out [2] vec4 = the combined record, then the shift.
// Padding lanes of outputs are written 0. Reductions are fixed-order trees (no atomics), so the
// statistics are deterministic for a given shape.

const WG: u32 = 256u;

struct Params {
    words: u32,      // rows·C4 (tensor_stats stage 1: number of partials)
    c4: u32,
    c: u32,          // logical channels per row
    signed: u32,     // 1 = int8 (−127..127), 0 = uint8 (0..255)
    scale: f32,      // 2^fl
    step: f32,       // 2^−fl
    floating: u32,   // 1 = no rounding (FP baseline)
    stage: u32,      // tensor_stats pass
}

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> mask_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> mask_out: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst2: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> red: array<vec4<f32>, WG>;

fn word_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn live_lanes(i: u32) -> vec4<bool> {
    let c = (i % p.c4) * 4u;
    return vec4<u32>(c, c + 1u, c + 2u, c + 3u) < vec4<u32>(p.c);
}

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

@compute @workgroup_size(WG)
fn fake_quant(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = word_index(wid, nwg, lid);
    if (i >= p.words) {
        return;
    }
    let lo = f32(code_lo(p.signed));
    let hi = f32(code_hi(p.signed));
    let live = live_lanes(i);
    let x = src[i];
    var val = vec4<f32>(0.0);
    var bits = 0u;
    for (var l = 0u; l < 4u; l++) {
        let nan = is_nan(x[l]);
        let t = x[l] * p.scale;
        var r = t;
        if (p.floating == 0u) {
            r = round(t);
            // Code 0 is +0.0 as on the CPU (an integer select: the compiler may not fold the
            // i32 round trip into a trunc that keeps −0.0).
            let q = i32(clamp(r, lo, hi));
            let v = bitcast<u32>(f32(q) * p.step);
            val[l] = bitcast<f32>(select(v, 0u, q == 0 || nan));
        } else {
            val[l] = select(clamp(t, lo, hi) * p.step, x[l], nan);
        }
        if (live[l] && !nan && r > lo && r < hi) {
            bits |= 1u << (8u * l);
        }
    }
    dst[i] = select(vec4<f32>(0.0), val, live);
    mask_out[i] = bits;
}

@compute @workgroup_size(WG)
fn fake_quant_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = word_index(wid, nwg, lid);
    if (i >= p.words) {
        return;
    }
    let m = vec4<f32>(unpack4xU8(mask_in[i]));
    dst2[i] = select(vec4<f32>(0.0), src[i] * m, live_lanes(i));
}

fn combine(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(a.x + b.x, a.y + b.y, min(a.z, b.z), max(a.w, b.w));
}

@compute @workgroup_size(WG)
fn tensor_stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let inf = bitcast<f32>(0x7f800000u);
    var acc = vec4<f32>(0.0, 0.0, inf, -inf);
    let shift = src[0].x;
    if (p.stage == 0u) {
        for (var i = wid.x * WG + lid; i < p.words; i += nwg.x * WG) {
            let x = src[i];
            let live = live_lanes(i);
            let d = select(vec4<f32>(0.0), x - shift, live);
            let lo = select(vec4<f32>(inf), x, live);
            let hi = select(vec4<f32>(-inf), x, live);
            acc.x += (d.x + d.y) + (d.z + d.w);
            acc.y += (d.x * d.x + d.y * d.y) + (d.z * d.z + d.w * d.w);
            acc.z = min(acc.z, min(min(lo.x, lo.y), min(lo.z, lo.w)));
            acc.w = max(acc.w, max(max(hi.x, hi.y), max(hi.z, hi.w)));
        }
    } else {
        for (var j = lid; j < p.words; j += WG) {
            acc = combine(acc, dst[j]);
        }
    }
    red[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] = combine(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        if (p.stage == 0u) {
            dst[wid.x] = red[0];
            if (wid.x == 0u) {
                dst[nwg.x] = vec4<f32>(shift, 0.0, 0.0, 0.0);
            }
        } else {
            dst2[0] = red[0];
            dst2[1] = dst[p.words];
        }
    }
}
