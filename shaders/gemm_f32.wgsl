// gemm_f32.wgsl — f32 GEMM / linear / 1×1 conv: out = clamp(x · wᵀ + bias, lo, hi).
//
//   x    [M][K4]  vec4<f32>: NHWC rows, K padded to a multiple of 4 with zeros
//   w    [N][K4]  vec4<f32>: OHWI rows (one output channel per row), K padded with zeros
//   bias [N/4]    vec4<f32>
//   out  [M][N/4] vec4<f32>
//
// The same tiling as gemm.wgsl, with a K "word" of 4 f32 instead of 4 int8 codes: 64×64 output
// tile per workgroup of 256 invocations, 4×4 outputs each, K slabs of 8 vec4 (32 K elements)
// staged k-major in workgroup memory, one dot(vec4, vec4) where gemm.wgsl has one dot4I8Packed.
// Dispatch (ceil(N/64), ceil(M/64), 1). Requires N % 4 == 0 (channels padded to 4; padded weight
// rows and bias are 0, so padding lanes come out clamp(0) = 0).

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK4: u32 = 8u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const WG: u32 = 256u;

struct Params {
    m: u32,
    n: u32,
    k4: u32,
    _pad0: u32,
    lo: f32, // activation clamp
    hi: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> xs: array<vec4<f32>, BK4 * BM>;
var<workgroup> ws: array<vec4<f32>, BK4 * BN>;

@compute @workgroup_size(WG)
fn gemm_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tr = (lid / (BN / TN)) * TM;
    let tc = (lid % (BN / TN)) * TN;
    var acc: array<vec4<f32>, TM>; // acc[i][j]: row tr + i, column tc + j
    for (var i = 0u; i < TM; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var kt = 0u; kt < p.k4; kt += BK4) {
        for (var i = lid; i < BM * BK4; i += WG) {
            let r = i / BK4;
            let kk = i % BK4;
            let gk = kt + kk;
            let in_k = gk < p.k4;
            var xv = vec4<f32>(0.0); // out-of-range rows and K read 0
            if (row0 + r < p.m && in_k) {
                xv = x[(row0 + r) * p.k4 + gk];
            }
            xs[kk * BM + r] = xv;
            var wv = vec4<f32>(0.0);
            if (col0 + r < p.n && in_k) {
                wv = w[(col0 + r) * p.k4 + gk];
            }
            ws[kk * BN + r] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK4; kk++) {
            var xr: array<vec4<f32>, TM>;
            var wr: array<vec4<f32>, TN>;
            for (var i = 0u; i < TM; i++) {
                xr[i] = xs[kk * BM + tr + i];
            }
            for (var j = 0u; j < TN; j++) {
                wr[j] = ws[kk * BN + tc + j];
            }
            for (var i = 0u; i < TM; i++) {
                acc[i] += vec4<f32>(dot(xr[i], wr[0]), dot(xr[i], wr[1]), dot(xr[i], wr[2]), dot(xr[i], wr[3]));
            }
        }
        workgroupBarrier();
    }
    let c = col0 + tc;
    if (c >= p.n) {
        return;
    }
    let b = bias[c / 4u];
    for (var i = 0u; i < TM; i++) {
        let r = row0 + tr + i;
        if (r < p.m) {
            out[(r * p.n + c) / 4u] = clamp(acc[i] + b, vec4<f32>(p.lo), vec4<f32>(p.hi));
        }
    }
}

// Training entry points, placeholders until written (issue 4).
@compute @workgroup_size(1)
fn gemm_f32_backward_input() {}
@compute @workgroup_size(1)
fn gemm_f32_backward_weight() {}
