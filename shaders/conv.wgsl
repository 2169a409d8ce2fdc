// conv.wgsl — int8 conv2d as an implicit GEMM with F8Net's shift-only requantization epilogue
// (the epilogue and the exact uint8 × int8 trick are gemm.wgsl's, unchanged).
//
//   x    [B][H][W][C4]   u32: four 8-bit codes per word (uint8 or int8 activations, NHWC,
//                             channels padded to 4 with zero codes)
//   w    [N][KH][KW][C4] u32: four int8 weight codes per word (OHWI, padded lanes 0)
//   wsum [N]             i32: Σ w[n][..] over real codes, for the uint8 × int8 correction
//   bias [N]             i32: bias at the accumulator's FL (FL_x + FL_w)
//   shift[N]             i32: requantization shift per output channel (> 0 right, < 0 left)
//   out                  u32: packed [B][OH][OW][N/4] codes (out_mode 0)
//                             or i32 [B][OH][OW][N] accumulators (out_mode 1)
//
// Implicit GEMM: row r = (b·OH + oy)·OW + ox (M = B·OH·OW rows), column = output channel,
// K = KH·KW·C4 words in (ky, kx, c4) order — the OHWI weight row, so w is gemm.wgsl's [N][K4]
// operand as is. The x word of (r, k) is x[b][oy·SH − PT + ky][ox·SW − PL + kx][c4]; taps in the
// padding (outside the image), rows past M and the K tail read code 0, i.e. the word x_xor,
// exactly like gemm.wgsl's out-of-range rows (their correction term cancels through wsum).
// Tiling as gemm.wgsl (the core is shaders/dp4a_tile.wgsl, appended): 64×64 output tile per workgroup of 256 invocations, 4×4 outputs each,
// K slabs of 8 words (32 codes) staged k-major in workgroup memory. Every invocation stages the
// same two tile rows (lid/8 and lid/8 + 32) at the same K word (lid%8) of every slab: their
// (b, oy, ox) are decoded once before the K loop, and the slab's (ky, kx, c4) is advanced by one
// slab at a time, with no division inside the K loop.
// Dispatch (ceil(N/64), ceil(M/64), 1). Requires N % 4 == 0 (channels padded to 4), C4 ≥ 1.

requires packed_4x8_integer_dot_product;

const ROWS: u32 = 2u;               // tile rows each invocation stages: BM·BK4 / WG
const ROW_STEP: u32 = 32u;          // WG / BK4: distance between them

struct Params {
    m: u32,          // GEMM rows: B·OH·OW output pixels
    n: u32,          // output channels, padded to 4
    k4: u32,         // KH·KW·C4 words per output channel
    c4: u32,         // input words per pixel
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: i32,
    pad_left: i32,
    x_xor: u32,      // 0x80808080 for uint8 input, 0 for int8
    out_mode: u32,   // 0 = packed codes, 1 = int32
    out_signed: u32, // packed output: 1 = int8, 0 = uint8
    clamp_lo: i32,   // extra clamp in output units (ReLU / ReLU6)
    clamp_hi: i32,
    n_valid: u32,    // logical output channels: lanes at or past it are written 0
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> wsum: array<i32>;
@group(0) @binding(3) var<storage, read> bias: array<i32>;
@group(0) @binding(4) var<storage, read> shift: array<i32>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn conv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tr = (lid / (BN / TN)) * TM;
    let tc = (lid % (BN / TN)) * TN;
    let kk = lid % BK4; // this invocation's K word within every slab
    let lr = lid / BK4; // its first staged tile row; the second is lr + ROW_STEP
    let in_h = i32(p.in_h);
    let in_w = i32(p.in_w);

    // Decode the staged rows once: top-left tap (may be in the padding) and the i32 word index
    // of that tap's channel 0 (possibly out of the image; only used for taps inside it).
    var live: array<bool, ROWS>;
    var iy0: array<i32, ROWS>;
    var ix0: array<i32, ROWS>;
    var base: array<i32, ROWS>;
    for (var j = 0u; j < ROWS; j++) {
        let r = row0 + lr + j * ROW_STEP;
        let ox = r % p.out_w;
        let t = r / p.out_w;
        let oy = t % p.out_h;
        let b = t / p.out_h;
        live[j] = r < p.m;
        iy0[j] = i32(oy * p.stride_h) - p.pad_top;
        ix0[j] = i32(ox * p.stride_w) - p.pad_left;
        base[j] = ((i32(b * p.in_h) + iy0[j]) * in_w + ix0[j]) * i32(p.c4);
    }
    // (ky, kx, ci) of K word kk; advanced by BK4 words per slab.
    var ci = kk % p.c4;
    var kx = (kk / p.c4) % p.kw;
    var ky = (kk / p.c4) / p.kw;

    var acc: array<array<i32, TN>, TM>;
    for (var kt = 0u; kt < p.k4; kt += BK4) {
        let gk = kt + kk;
        let in_k = gk < p.k4;
        let koff = i32((ky * p.in_w + kx) * p.c4 + ci); // same tap offset for both rows
        for (var j = 0u; j < ROWS; j++) {
            let r = lr + j * ROW_STEP;
            let iy = iy0[j] + i32(ky);
            let ix = ix0[j] + i32(kx);
            let inside = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
            var xv = p.x_xor; // padding taps, rows past M and the K tail read code 0
            if (live[j] && in_k && inside) {
                xv = x[u32(base[j] + koff)] ^ p.x_xor;
            }
            xs[kk * BM + r] = xv;
            var wv = 0u;
            if (col0 + r < p.n && in_k) {
                wv = w[(col0 + r) * p.k4 + gk];
            }
            ws[kk * BN + r] = wv;
        }
        ci += BK4;
        while (ci >= p.c4) {
            ci -= p.c4;
            kx += 1u;
            if (kx == p.kw) {
                kx = 0u;
                ky += 1u;
            }
        }
        workgroupBarrier();
        slab_product(&acc, tr, tc);
        workgroupBarrier();
    }

    store_block(&acc, row0 + tr, col0 + tc);
}
