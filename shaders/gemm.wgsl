// gemm.wgsl — int8 GEMM / linear / 1×1 conv with F8Net's shift-only requantization epilogue.
//
//   x    [M][K4]  u32: four 8-bit codes per word (uint8 or int8 activations, NHWC rows)
//   w    [N][K4]  u32: four int8 weight codes per word (OHWI: one output channel per row)
//   wsum [N]      i32: Σ_k w[n][k], for the exact uint8 × int8 correction
//   bias [N]      i32: bias at the accumulator's FL (FL_x + FL_w)
//   shift[N]      i32: requantization shift per output channel (> 0 right, < 0 left)
//   out           u32: packed [M][N/4] codes (out_mode 0) or i32 [M][N] accumulators (out_mode 1)
//
// uint8 × int8: WGSL has only int8·int8 and uint8·uint8 dots, so uint8 codes are XORed with
// 0x80 (x − 128, an exact int8) and 128·Σw is added back: Σ x·w = Σ (x − 128)·w + 128·Σ w.
// The only multiplications are the 8-bit ones inside dot4I8Packed; 128·Σw is a shift.
// Tiling (the core is shaders/dp4a_tile.wgsl, appended): 64×64 output tile per workgroup of
// 256 invocations, 4×4 outputs each, K slabs of 8 words (32 codes) staged k-major in workgroup
// memory. Dispatch (ceil(N/64), ceil(M/64), 1).
// Requires N % 4 == 0 (channels padded to 4).

requires packed_4x8_integer_dot_product;

struct Params {
    m: u32,
    n: u32,
    k4: u32,
    x_xor: u32,      // 0x80808080 for uint8 input, 0 for int8
    out_mode: u32,   // 0 = packed codes, 1 = int32
    out_signed: u32, // packed output: 1 = int8, 0 = uint8
    clamp_lo: i32,   // extra clamp in output units (ReLU / ReLU6)
    clamp_hi: i32,
    n_valid: u32,    // logical output channels: lanes at or past it are written 0
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> wsum: array<i32>;
@group(0) @binding(3) var<storage, read> bias: array<i32>;
@group(0) @binding(4) var<storage, read> shift: array<i32>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tr = (lid / (BN / TN)) * TM;
    let tc = (lid % (BN / TN)) * TN;
    var acc: array<array<i32, TN>, TM>;
    for (var kt = 0u; kt < p.k4; kt += BK4) {
        for (var i = lid; i < BM * BK4; i += WG) {
            let r = i / BK4;
            let kk = i % BK4;
            let gk = kt + kk;
            let in_k = gk < p.k4;
            var xv = p.x_xor; // out-of-range rows/K read code 0 (its weight is 0 anyway)
            if (row0 + r < p.m && in_k) {
                xv = x[(row0 + r) * p.k4 + gk] ^ p.x_xor;
            }
            xs[kk * BM + r] = xv;
            var wv = 0u;
            if (col0 + r < p.n && in_k) {
                wv = w[(col0 + r) * p.k4 + gk];
            }
            ws[kk * BN + r] = wv;
        }
        workgroupBarrier();
        slab_product(&acc, tr, tc);
        workgroupBarrier();
    }
    store_block(&acc, row0 + tr, col0 + tc);
}
