// conv_f32.wgsl — f32 convolution as an implicit GEMM, forward and backward, with the tile core
// of f32_tile.wgsl (64×64 tiles of 256 invocations, 4×4 each, K slabs of 8 vec4).
//
//   x    [B][H][W][C4]      vec4<f32>: NHWC input, channels padded to 4 with zeros
//   w    [N][KH][KW][4·C4]  OHWI weights, one output channel per row (K4 = KH·KW·C4 words)
//   y/dy [B][OH][OW][N/4]   vec4<f32>: NHWC output; GEMM rows M = B·OH·OW
//
//   conv_f32                  y = clamp(conv(x, w) + bias, lo, hi)   bindings x, w, bias, out, p
//   conv_f32_backward_input   dx = col2im(dy · w)                    bindings x (dy), w_s, out2, p3
//   conv_f32_backward_weight  split z's dw [N][K4], db [N/4]         bindings x, w (dy), out2, out, p
//
// Forward: row r = output pixel (b, oy, ox), K word (ky, kx, c4), reading input pixel
// (oy·stride_h + ky − pad_top, ox·stride_w + kx − pad_left), zero outside the image.
// Backward input gathers only valid taps by stride phases (dispatch z = ry·stride_w + rx): input
// rows iy = fy + stride_h·j, (iy + pad_top) % stride_h = ry, receive exactly the taps
// ky = ry + stride_h·ty, from output row oy = oyb + j − ty (same for x). Row r of a phase is
// (b, j, i); K word (ty, tx, n4) of dy; the B operand gathers w[4·n4 + l][ky][kx][ci] over the
// lanes l. Phases without taps (kernel < stride) write 0.
// Backward weight: dyᵀ · im2col(x) over the rows split_rows·z.. of split z; the launcher sums
// the partials with gemm_f32_sum_partials.
// Dispatch: forward (ceil(N/64), ceil(M/64), 1); backward input (ceil(4·C4/64), ceil(largest
// phase rows/64), stride_h·stride_w); backward weight (ceil(K4/16), ceil(N/64), splits).

const ROWS_PER_PASS: u32 = WG / BK4; // 32 rows staged per pass; BM / ROWS_PER_PASS = 2 passes

struct Params {
    m: u32,  // GEMM rows M = B·OH·OW
    n: u32,  // forward, backward weight: output channels (padded); backward input: 4·c4
    k4: u32, // forward, backward weight: KH·KW·C4; backward input: N/4 (dy words per pixel)
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
    batch: u32,
    splits: u32,
    split_rows: u32, // backward weight: rows per split (a multiple of BP)
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w_s: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out2: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p3: Params;
@group(0) @binding(4) var<uniform> p: Params;

fn inside(iy: i32, ix: i32, h: u32, w: u32) -> bool {
    return iy >= 0 && iy < i32(h) && ix >= 0 && ix < i32(w);
}

@compute @workgroup_size(WG)
fn conv_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let kk = lid % BK4;
    // The two rows this invocation stages: image base row and top-left input corner.
    var base: array<u32, 2>;
    var iy0: array<i32, 2>;
    var ix0: array<i32, 2>;
    for (var s = 0u; s < 2u; s++) {
        let gr = row0 + lid / BK4 + s * ROWS_PER_PASS;
        let t = gr / p.out_w;
        base[s] = (t / p.out_h) * p.in_h;
        iy0[s] = i32((t % p.out_h) * p.stride_h) - i32(p.pad_top);
        ix0[s] = i32((gr % p.out_w) * p.stride_w) - i32(p.pad_left);
    }
    var acc: array<vec4<f32>, TM>; // acc[i][j]: row tr + i, column tc + j
    for (var i = 0u; i < TM; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var kt = 0u; kt < p.k4; kt += BK4) {
        let gk = kt + kk;
        let tap = gk / p.c4;
        let ky = i32(tap / p.kw);
        let kx = i32(tap % p.kw);
        for (var s = 0u; s < 2u; s++) {
            let r = lid / BK4 + s * ROWS_PER_PASS;
            let iy = iy0[s] + ky;
            let ix = ix0[s] + kx;
            var xv = vec4<f32>(0.0); // out-of-range rows, K and padding read 0
            if (row0 + r < p.m && gk < p.k4 && inside(iy, ix, p.in_h, p.in_w)) {
                xv = x[((base[s] + u32(iy)) * p.in_w + u32(ix)) * p.c4 + gk % p.c4];
            }
            xs[kk * BM + r] = xv;
            var wv = vec4<f32>(0.0);
            if (col0 + r < p.n && gk < p.k4) {
                wv = w[(col0 + r) * p.k4 + gk];
            }
            ws[kk * BN + r] = wv;
        }
        workgroupBarrier();
        mma((lid / (BN / TN)) * TM, (lid % (BN / TN)) * TN, &acc);
        workgroupBarrier();
    }
    let tr = (lid / (BN / TN)) * TM;
    let c = col0 + (lid % (BN / TN)) * TN;
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

@compute @workgroup_size(WG)
fn conv_f32_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let sh = p3.stride_h;
    let sw = p3.stride_w;
    let ry = wid.z / sw;
    let rx = wid.z % sw;
    let fy = (ry + sh - p3.pad_top % sh) % sh; // first iy with (iy + pad_top) % sh == ry
    let fx = (rx + sw - p3.pad_left % sw) % sw;
    let ny = select(0u, (p3.in_h - fy + sh - 1u) / sh, fy < p3.in_h);
    let nx = select(0u, (p3.in_w - fx + sw - 1u) / sw, fx < p3.in_w);
    let nty = select(0u, (p3.kh - ry + sh - 1u) / sh, ry < p3.kh);
    let ntx = select(0u, (p3.kw - rx + sw - 1u) / sw, rx < p3.kw);
    let oyb = i32((fy + p3.pad_top - ry) / sh); // oy = oyb + j − ty
    let oxb = i32((fx + p3.pad_left - rx) / sw);
    let mp = p3.batch * ny * nx;
    let k4 = nty * ntx * p3.k4;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    if (row0 >= mp) {
        return;
    }
    let kk = lid % BK4;
    var base: array<u32, 2>;
    var oy0: array<i32, 2>;
    var ox0: array<i32, 2>;
    for (var s = 0u; s < 2u; s++) {
        let gr = row0 + lid / BK4 + s * ROWS_PER_PASS;
        let t = gr / nx;
        base[s] = (t / ny) * p3.out_h;
        oy0[s] = oyb + i32(t % ny);
        ox0[s] = oxb + i32(gr % nx);
    }
    var acc: array<vec4<f32>, TM>;
    for (var i = 0u; i < TM; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var kt = 0u; kt < k4; kt += BK4) {
        let gk = kt + kk;
        let t = gk / p3.k4;
        for (var s = 0u; s < 2u; s++) {
            let r = lid / BK4 + s * ROWS_PER_PASS;
            let oy = oy0[s] - i32(t / ntx);
            let ox = ox0[s] - i32(t % ntx);
            var dv = vec4<f32>(0.0);
            if (row0 + r < mp && gk < k4 && inside(oy, ox, p3.out_h, p3.out_w)) {
                dv = x[((base[s] + u32(oy)) * p3.out_w + u32(ox)) * p3.k4 + gk % p3.k4];
            }
            xs[kk * BM + r] = dv;
            // B: column c (input channel) at word gk2 = (ty, tx, n4), four output-channel lanes.
            let c = lid % BN;
            let kk2 = lid / BN + s * (WG / BN);
            let gk2 = kt + kk2;
            var wv = vec4<f32>(0.0);
            if (col0 + c < p3.n && gk2 < k4) {
                let t2 = gk2 / p3.k4;
                let ky = ry + (t2 / ntx) * sh;
                let kx = rx + (t2 % ntx) * sw;
                let o = (((gk2 % p3.k4) * 4u * p3.kh + ky) * p3.kw + kx) * p3.n + col0 + c;
                let step = p3.kh * p3.kw * p3.n; // one output channel
                wv = vec4<f32>(w_s[o], w_s[o + step], w_s[o + 2u * step], w_s[o + 3u * step]);
            }
            ws[kk2 * BN + c] = wv;
        }
        workgroupBarrier();
        mma((lid / (BN / TN)) * TM, (lid % (BN / TN)) * TN, &acc);
        workgroupBarrier();
    }
    let tr = (lid / (BN / TN)) * TM;
    let c = col0 + (lid % (BN / TN)) * TN;
    if (c >= p3.n) {
        return;
    }
    for (var i = 0u; i < TM; i++) {
        let r = row0 + tr + i;
        if (r < mp) {
            let t = r / nx;
            let iy = fy + (t % ny) * sh;
            let ix = fx + (r % nx) * sw;
            out2[(((t / ny) * p3.in_h + iy) * p3.in_w + ix) * p3.c4 + c / 4u] = acc[i];
        }
    }
}

@compute @workgroup_size(WG)
fn conv_f32_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n4 = p.n / 4u;
    let nw0 = wid.y * TW; // first dy word (4 dw rows each) of the tile
    let tn = lid / TW;
    let tk = lid % TW;
    // The x word this invocation stages is fixed: K word gk = (ky, kx, ci4).
    let gk = wid.x * TW + tk;
    let tap = gk / p.c4;
    let ky = i32(tap / p.kw) - i32(p.pad_top);
    let kx = i32(tap % p.kw) - i32(p.pad_left);
    let m0 = wid.z * p.split_rows;
    let m1 = min(m0 + p.split_rows, p.m);
    var acc: array<vec4<f32>, 4>; // acc[i]: dw row 4·(nw0 + tn) + i, word gk of column tk
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    var dsum = vec4<f32>(0.0);
    for (var r0 = m0; r0 < m1; r0 += BP) {
        for (var i = lid; i < BP * TW; i += WG) {
            let row = r0 + i / TW;
            let t = row / p.out_w;
            let iy = i32((t % p.out_h) * p.stride_h) + ky;
            let ix = i32((row % p.out_w) * p.stride_w) + kx;
            var dv = vec4<f32>(0.0);
            var xv = vec4<f32>(0.0);
            if (row < m1 && nw0 + tk < n4) {
                dv = w[row * n4 + nw0 + tk];
            }
            if (row < m1 && gk < p.k4 && inside(iy, ix, p.in_h, p.in_w)) {
                xv = x[(((t / p.out_h) * p.in_h + u32(iy)) * p.in_w + u32(ix)) * p.c4 + gk % p.c4];
            }
            xs[i] = dv;
            ws[i] = xv;
        }
        workgroupBarrier();
        grad_slab(tn, tk, &acc, &dsum);
        workgroupBarrier();
    }
    grad_store(acc, dsum, wid.z, nw0 + tn, gk, wid.x == 0u && tk == 0u);
}
