// quantize.wgsl — conversions between f32, int32 streams and 8-bit fixed-point codes.
// Spec: src/reference/quantize.rs (Format::quantize, fixed::requantize); launcher:
// src/ops/quantize.rs. One Params for the three entry points.
//
//   quantize:   x f32 [N][H][W][4·C4] (padded)  → out u32 [N][H][W][C4] packed codes
//               q = sat(round(x · 2^fl)), round() is ties-to-even, NaN → 0, ±inf saturate
//   dequantize: x u32 [N][H][W][C4] codes       → out f32 [N][H][W][4·C4] = code · 2^−fl
//   requantize: x i32 [N][H][W][4·C4] at fl_in  → out u32 [N][H][W][C4] packed codes
//               q = sat(clamp(shift_round(x, fl_in − fl), clamp_lo, clamp_hi))
//
// The powers of two (2^fl, 2^−fl) come from the host as `scale`, exact, so every product is exact.
// Padding lanes (channel ≥ c) are written as 0. Each invocation handles PER words (one word =
// 4 channels), WG apart (coalesced); 1-D over ceil(words / (WG·PER)) workgroups, folded to 2-D
// by grid_1d. Each entry point binds its own typed views of bindings 0 and 1.

const WG: u32 = 64u;
const PER: u32 = 4u;

struct Params {
    words: u32,     // N·H·W·C4
    c4: u32,
    c: u32,         // logical channels
    signed: u32,    // codes: 1 = int8, 0 = uint8
    scale: f32,     // quantize: 2^fl; dequantize: 2^−fl
    shift: i32,     // requantize: fl_in − fl
    clamp_lo: i32,  // requantize: extra clamp in output units
    clamp_hi: i32,
}

@group(0) @binding(0) var<storage, read> x_f32: array<vec4<f32>>;
@group(0) @binding(0) var<storage, read> x_codes: array<u32>;
@group(0) @binding(0) var<storage, read> x_i32: array<vec4<i32>>;
@group(0) @binding(1) var<storage, read_write> out_codes: array<u32>;
@group(0) @binding(1) var<storage, read_write> out_f32: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: Params;

fn first_word(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG * PER + lid;
}

fn live_lanes(i: u32) -> vec4<bool> {
    let c = (i % p.c4) * 4u;
    return vec4<u32>(c, c + 1u, c + 2u, c + 3u) < vec4<u32>(p.c);
}

fn quantize_lane(v: f32) -> i32 {
    if ((bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u) {
        return 0; // NaN
    }
    let q = round(v * p.scale);
    return i32(clamp(q, f32(code_lo(p.signed)), f32(code_hi(p.signed))));
}

@compute @workgroup_size(WG)
fn quantize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_word(wid, nwg, lid);
    for (var k = 0u; k < PER; k++) {
        let i = base + k * WG;
        if (i >= p.words) {
            return;
        }
        let v = x_f32[i];
        var q: vec4<i32>;
        for (var l = 0u; l < 4u; l++) {
            q[l] = quantize_lane(v[l]);
        }
        out_codes[i] = pack_codes(select(vec4<i32>(0), q, live_lanes(i)), p.signed);
    }
}

@compute @workgroup_size(WG)
fn dequantize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_word(wid, nwg, lid);
    for (var k = 0u; k < PER; k++) {
        let i = base + k * WG;
        if (i >= p.words) {
            return;
        }
        let v = vec4<f32>(unpack_codes(x_codes[i], p.signed)) * p.scale;
        out_f32[i] = select(vec4<f32>(0.0), v, live_lanes(i));
    }
}

@compute @workgroup_size(WG)
fn requantize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let base = first_word(wid, nwg, lid);
    let lo = code_lo(p.signed);
    let hi = code_hi(p.signed);
    for (var k = 0u; k < PER; k++) {
        let i = base + k * WG;
        if (i >= p.words) {
            return;
        }
        let v = x_i32[i];
        var q: vec4<i32>;
        for (var l = 0u; l < 4u; l++) {
            q[l] = clamp(clamp(shift_round(v[l], p.shift), p.clamp_lo, p.clamp_hi), lo, hi);
        }
        out_codes[i] = pack_codes(select(vec4<i32>(0), q, live_lanes(i)), p.signed);
    }
}
