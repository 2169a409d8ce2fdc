// conv_f32.wgsl — f32 convolution as an implicit GEMM: out = clamp(conv(x, w) + bias, lo, hi).
//
//   x    [B][H][W][C4]        vec4<f32>: NHWC input, channels padded to 4 with zeros
//   w    [N][KH][KW][C4]      vec4<f32>: OHWI weights, one output channel per row (K4 = KH·KW·C4)
//   bias [N/4]                vec4<f32>
//   out  [B][OH][OW][N/4]     vec4<f32>: NHWC output, i.e. GEMM rows M = B·OH·OW
//
// The tiling of gemm_f32.wgsl (64×64 output tile, 256 invocations, 4×4 outputs each, K slabs of
// 8 vec4 = 32 K elements staged k-major in workgroup memory). Row r of the implicit GEMM is output
// pixel (b, oy, ox); K word k is (ky, kx, c4). Staging reads the input pixel
// (oy·stride_h + ky − pad_top, ox·stride_w + kx − pad_left), zero outside the image (zero padding;
// pad_bottom/right only shape OH/OW on the host).
// Each invocation always stages the same two rows (lid / 8 and lid / 8 + 32) at the same K offset
// (lid % 8), so the row decode is done once and the K decode once per slab.
// Dispatch (ceil(N/64), ceil(M/64), 1). Requires N % 4 == 0.

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK4: u32 = 8u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const WG: u32 = 256u;
const ROWS_PER_PASS: u32 = WG / BK4; // 32 rows staged per pass; BM / ROWS_PER_PASS = 2 passes

struct Params {
    m: u32,
    n: u32,
    k4: u32,
    c4: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    lo: f32, // activation clamp
    hi: f32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> xs: array<vec4<f32>, BK4 * BM>;
var<workgroup> ws: array<vec4<f32>, BK4 * BN>;

@compute @workgroup_size(WG)
fn conv_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tr = (lid / (BN / TN)) * TM;
    let tc = (lid % (BN / TN)) * TN;

    // The rows this invocation stages: pixel base index (b·H·W) and top-left input corner.
    let kk = lid % BK4;
    var valid: array<bool, 2>;
    var base: array<u32, 2>;
    var iy0: array<i32, 2>;
    var ix0: array<i32, 2>;
    var wrow: array<u32, 2>;
    var wvalid: array<bool, 2>;
    for (var s = 0u; s < 2u; s++) {
        let r = lid / BK4 + s * ROWS_PER_PASS;
        let gr = row0 + r;
        valid[s] = gr < p.m;
        let ox = gr % p.out_w;
        let t = gr / p.out_w;
        let oy = t % p.out_h;
        let b = t / p.out_h;
        base[s] = b * p.in_h;
        iy0[s] = i32(oy * p.stride_h) - i32(p.pad_top);
        ix0[s] = i32(ox * p.stride_w) - i32(p.pad_left);
        wrow[s] = (col0 + r) * p.k4;
        wvalid[s] = col0 + r < p.n;
    }

    var acc: array<vec4<f32>, TM>; // acc[i][j]: row tr + i, column tc + j
    for (var i = 0u; i < TM; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var kt = 0u; kt < p.k4; kt += BK4) {
        let gk = kt + kk;
        let in_k = gk < p.k4;
        let ci = gk % p.c4;
        let tap = gk / p.c4;
        let kx = i32(tap % p.kw);
        let ky = i32(tap / p.kw);
        for (var s = 0u; s < 2u; s++) {
            let r = lid / BK4 + s * ROWS_PER_PASS;
            let iy = iy0[s] + ky;
            let ix = ix0[s] + kx;
            var xv = vec4<f32>(0.0); // out-of-range rows, K and padding read 0
            if (valid[s] && in_k && iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w)) {
                xv = x[((base[s] + u32(iy)) * p.in_w + u32(ix)) * p.c4 + ci];
            }
            xs[kk * BM + r] = xv;
            var wv = vec4<f32>(0.0);
            if (wvalid[s] && in_k) {
                wv = w[wrow[s] + gk];
            }
            ws[kk * BN + r] = wv;
        }
        workgroupBarrier();
        for (var k = 0u; k < BK4; k++) {
            var xr: array<vec4<f32>, TM>;
            var wr: array<vec4<f32>, TN>;
            for (var i = 0u; i < TM; i++) {
                xr[i] = xs[k * BM + tr + i];
            }
            for (var j = 0u; j < TN; j++) {
                wr[j] = ws[k * BN + tc + j];
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
    let bv = bias[c / 4u];
    for (var i = 0u; i < TM; i++) {
        let r = row0 + tr + i;
        if (r < p.m) {
            out[(r * p.n + c) / 4u] = clamp(acc[i] + bv, vec4<f32>(p.lo), vec4<f32>(p.hi));
        }
    }
}

// Training entry points, placeholders until written (issue 4).
@compute @workgroup_size(1)
fn conv_f32_backward_input() {}
@compute @workgroup_size(1)
fn conv_f32_backward_weight() {}
