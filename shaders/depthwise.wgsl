// depthwise.wgsl — int8 depthwise convolution (groups == channels) with F8Net's fused shift-only
// epilogue (the same as gemm.wgsl). Spec: src/reference/depthwise.rs; launcher: src/ops/depthwise.rs.
//
//   x    [N][H][W][C4]    u32: four 8-bit codes per word (uint8 or int8 per x_signed)
//   w    [KH][KW][C4]     u32: four int8 weight codes per word (channel-last; padding lanes 0)
//   bias [4·C4]           i32: bias at the accumulator's FL (FL_x + FL_w)
//   shift[4·C4]           i32: requantization shift per channel (> 0 right, < 0 left)
//   out  [N][OH][OW][C4]  u32 packed codes (out_mode 0) or i32 [N][OH][OW][4·C4] (out_mode 1)
//
// A direct kernel (the reduction runs over taps, not channels, so there is no dot4): codes are
// unpacked to vec4<i32> and multiplied lane-wise; |Σ| ≤ 255·127·KH·KW, far inside int32.
// Tiling: a workgroup owns an OT_H × OT_W (8 × 8) output tile of CW channel words. It stages the input
// tile plus halo, ((OT_H−1)·SH + KH) × ((OT_W−1)·SW + KW) pixels × CW words, in workgroup memory
// (out-of-image taps staged as 0), then each invocation computes PX output pixels along x for one
// word (4 channels). Dispatch (ceil(OW/OT_W), ceil(OH/OT_H), N·ceil(C4/CW)); the launcher checks
// that the tile fits SMEM words.

const OT_W: u32 = 8u;
const OT_H: u32 = 8u;
const PX: u32 = 4u;
const CW: u32 = 8u;
const WG: u32 = 128u; // CW · (OT_W / PX) · OT_H
const SMEM: u32 = 4096u;

struct Params {
    n: u32,
    h: u32,
    w: u32,
    c4: u32,
    c: u32,          // logical channels: lanes ≥ c are written as 0
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    tile_h: u32,     // staged input rows: (OT_H − 1)·stride_h + kh
    tile_w: u32,     // staged input columns: (OT_W − 1)·stride_w + kw
    x_signed: u32,   // 1 = int8 input codes, 0 = uint8
    out_mode: u32,   // 0 = packed codes, 1 = int32
    out_signed: u32, // packed output: 1 = int8, 0 = uint8
    clamp_lo: i32,   // extra clamp in output units (ReLU / ReLU6)
    clamp_hi: i32,
}

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<i32>;
@group(0) @binding(3) var<storage, read> shift: array<i32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;

// Input tile, [tile_h][tile_w][CW] words.
var<workgroup> tile: array<u32, SMEM>;

@compute @workgroup_size(WG)
fn depthwise(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let cgroups = (p.c4 + CW - 1u) / CW;
    let b = wid.z / cgroups;
    let cw0 = (wid.z % cgroups) * CW;
    let ox0 = wid.x * OT_W;
    let oy0 = wid.y * OT_H;
    // Input coordinates of the tile's first pixel (negative inside the top/left padding).
    let iy0 = i32(oy0 * p.stride_h) - i32(p.pad_top);
    let ix0 = i32(ox0 * p.stride_w) - i32(p.pad_left);
    // Stage row by row: the only divisions are by the constant CW (no runtime division, which
    // is slow on every GPU and scalarized on CPU drivers).
    let row_words = p.tile_w * CW;
    for (var r = 0u; r < p.tile_h; r++) {
        let iy = iy0 + i32(r);
        let row_in = iy >= 0 && iy < i32(p.h);
        for (var i = lid; i < row_words; i += WG) {
            let cl = i % CW;
            let ix = ix0 + i32(i / CW);
            let cw = cw0 + cl;
            var v = 0u; // padded taps and channel words past C4 are code 0
            if (row_in && ix >= 0 && ix < i32(p.w) && cw < p.c4) {
                v = x[((b * p.h + u32(iy)) * p.w + u32(ix)) * p.c4 + cw];
            }
            tile[r * row_words + i] = v;
        }
    }
    workgroupBarrier();

    let cl = lid % CW;
    let tx = ((lid / CW) % (OT_W / PX)) * PX;
    let ty = lid / (CW * (OT_W / PX));
    let cw = cw0 + cl;
    let oy = oy0 + ty;
    if (cw >= p.c4 || oy >= p.oh || ox0 + tx >= p.ow) {
        return;
    }
    var acc: array<vec4<i32>, PX>;
    // 3-wide rows at stride 1 or 2 (every depthwise layer of MobileNet-V2, most of
    // EfficientNet's): the PX outputs read 6 or 9 neighbouring columns, loaded and unpacked once
    // into named registers. Other windows take the general loop below.
    if (p.kw == 3u && (p.stride_w == 1u || p.stride_w == 2u)) {
        for (var ky = 0u; ky < p.kh; ky++) {
            let t = ((ty * p.stride_h + ky) * p.tile_w + tx * p.stride_w) * CW + cl;
            let wr = ky * 3u * p.c4 + cw;
            let w0 = unpack4xI8(w[wr]);
            let w1 = unpack4xI8(w[wr + p.c4]);
            let w2 = unpack4xI8(w[wr + 2u * p.c4]);
            let x0 = col(t, 0u);
            let x1 = col(t, 1u);
            let x2 = col(t, 2u);
            let x3 = col(t, 3u);
            let x4 = col(t, 4u);
            let x5 = col(t, 5u);
            if (p.stride_w == 1u) {
                acc[0] += x0 * w0 + x1 * w1 + x2 * w2;
                acc[1] += x1 * w0 + x2 * w1 + x3 * w2;
                acc[2] += x2 * w0 + x3 * w1 + x4 * w2;
                acc[3] += x3 * w0 + x4 * w1 + x5 * w2;
            } else {
                let x6 = col(t, 6u);
                let x7 = col(t, 7u);
                let x8 = col(t, 8u);
                acc[0] += x0 * w0 + x1 * w1 + x2 * w2;
                acc[1] += x2 * w0 + x3 * w1 + x4 * w2;
                acc[2] += x4 * w0 + x5 * w1 + x6 * w2;
                acc[3] += x6 * w0 + x7 * w1 + x8 * w2;
            }
        }
    } else {
        for (var ky = 0u; ky < p.kh; ky++) {
            let row = (ty * p.stride_h + ky) * p.tile_w;
            for (var kx = 0u; kx < p.kw; kx++) {
                let wv = unpack4xI8(w[(ky * p.kw + kx) * p.c4 + cw]);
                for (var j = 0u; j < PX; j++) {
                    let t = (row + (tx + j) * p.stride_w + kx) * CW + cl;
                    acc[j] += unpack_codes(tile[t], p.x_signed) * wv;
                }
            }
        }
    }

    let c = cw * 4u;
    let bv = vec4<i32>(bias[c], bias[c + 1u], bias[c + 2u], bias[c + 3u]);
    let sv = vec4<i32>(shift[c], shift[c + 1u], shift[c + 2u], shift[c + 3u]);
    let live = vec4<u32>(c, c + 1u, c + 2u, c + 3u) < vec4<u32>(p.c);
    for (var j = 0u; j < PX; j++) {
        let ox = ox0 + tx + j;
        if (ox >= p.ow) {
            break;
        }
        var q: vec4<i32>;
        for (var l = 0u; l < 4u; l++) {
            let a = sat_add(acc[j][l], bv[l]);
            q[l] = epilogue_value(a, sv[l], p.clamp_lo, p.clamp_hi, p.out_mode, p.out_signed);
        }
        q = select(vec4<i32>(0), q, live);
        let word = ((b * p.oh + oy) * p.ow + ox) * p.c4 + cw;
        if (p.out_mode == 0u) {
            out[word] = pack_codes(q, p.out_signed);
        } else {
            for (var l = 0u; l < 4u; l++) {
                out[word * 4u + l] = bitcast<u32>(q[l]);
            }
        }
    }
}

// Unpacked codes of staged column `i` after tile index `t` (columns are CW words apart).
fn col(t: u32, i: u32) -> vec4<i32> {
    return unpack_codes(tile[t + i * CW], p.x_signed);
}
