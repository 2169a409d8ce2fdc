// gemm_f32.wgsl — f32 GEMM / linear / 1×1 conv, forward and backward, and the split-K sum.
// The tile core (sizes, workgroup tiles, slab products, gradient store) is f32_tile.wgsl.
//
//   gemm_f32                  out [M][N/4] = clamp(x [M][K4] · w [N][K4]ᵀ + bias [N/4], lo, hi)
//   gemm_f32_backward_input   dx [M][N/4] = dy [M][K4] · w [4·K4][N] (w: the forward's weights
//                             read as scalars, N their padded k; m, n, k4 = M, N, dy words)
//   gemm_f32_backward_weight  dw [N][K4] = dyᵀ · x, db [N/4] = Σ_rows dy over the rows
//                             split_rows·z.. of split z (x [M][K4], dy [M][N/4]), written to
//                             partials out2 [splits][N][K4], out [splits][N/4]
//   gemm_f32_sum_partials     out_a[i] = Σ_z part_a[z][i] (len_a words), out_b likewise (len_b)
//
// Values are vec4<f32>: rows of NHWC / OHWI matrices with channels padded to 4 with zeros, so
// padding lanes stay 0 everywhere. No float atomics: partials are summed in split order.
// Dispatch: forward and backward input (ceil(N/64), ceil(M/64), 1); backward weight
// (ceil(K4/16), ceil(N/64), splits); sum partials grid_1d over len_a + len_b, 64 per workgroup.

struct Params {
    m: u32,
    n: u32,
    k4: u32,
    splits: u32,
    lo: f32, // activation clamp
    hi: f32,
    split_rows: u32, // backward weight: rows per split (a multiple of BP)
    len_a: u32,      // sum_partials: words of out_a
    len_b: u32,      // sum_partials: words of out_b
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Bindings, per entry point (unused names alias the same slots):
//   forward:          x, w, bias, out, p
//   backward input:   x (dy), w_s, out2 (dx), p3
//   backward weight:  x, w (dy), out2 (part_w), out (part_b), p
//   sum partials:     x (part_a), w (part_b), out2 (out_a), out (out_b), p
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w_s: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out2: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p3: Params;
@group(0) @binding(4) var<uniform> p: Params;

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
        mma(tr, tc, &acc);
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

@compute @workgroup_size(WG)
fn gemm_f32_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tr = (lid / (BN / TN)) * TM;
    let tc = (lid % (BN / TN)) * TN;
    var acc: array<vec4<f32>, TM>;
    for (var i = 0u; i < TM; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var kt = 0u; kt < p3.k4; kt += BK4) {
        for (var i = lid; i < BM * BK4; i += WG) {
            let r = i / BK4;
            let gk = kt + i % BK4;
            var dv = vec4<f32>(0.0);
            if (row0 + r < p3.m && gk < p3.k4) {
                dv = x[(row0 + r) * p3.k4 + gk];
            }
            xs[(i % BK4) * BM + r] = dv;
            // Column c of wᵀ at word gk2: w[4·gk2 + l][c] for the four lanes l.
            let c = i % BN;
            let gk2 = kt + i / BN;
            var wv = vec4<f32>(0.0);
            if (col0 + c < p3.n && gk2 < p3.k4) {
                let o = 4u * gk2 * p3.n + col0 + c;
                wv = vec4<f32>(w_s[o], w_s[o + p3.n], w_s[o + 2u * p3.n], w_s[o + 3u * p3.n]);
            }
            ws[(i / BN) * BN + c] = wv;
        }
        workgroupBarrier();
        mma(tr, tc, &acc);
        workgroupBarrier();
    }
    let c = col0 + tc;
    if (c >= p3.n) {
        return;
    }
    for (var i = 0u; i < TM; i++) {
        let r = row0 + tr + i;
        if (r < p3.m) {
            out2[(r * p3.n + c) / 4u] = acc[i];
        }
    }
}

@compute @workgroup_size(WG)
fn gemm_f32_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n4 = p.n / 4u;
    let nw0 = wid.y * TW; // first dy word (4 dw rows each) of the tile
    let kw0 = wid.x * TW; // first x word (4 dw columns each) of the tile
    let tn = lid / TW;
    let tk = lid % TW;
    let m0 = wid.z * p.split_rows;
    let m1 = min(m0 + p.split_rows, p.m);
    var acc: array<vec4<f32>, 4>; // acc[i]: dw row 4·(nw0 + tn) + i, word kw0 + tk
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    var dsum = vec4<f32>(0.0);
    for (var r0 = m0; r0 < m1; r0 += BP) {
        for (var i = lid; i < BP * TW; i += WG) {
            let row = r0 + i / TW;
            var dv = vec4<f32>(0.0);
            var xv = vec4<f32>(0.0);
            if (row < m1 && nw0 + tk < n4) {
                dv = w[row * n4 + nw0 + tk];
            }
            if (row < m1 && kw0 + tk < p.k4) {
                xv = x[row * p.k4 + kw0 + tk];
            }
            xs[i] = dv;
            ws[i] = xv;
        }
        workgroupBarrier();
        grad_slab(tn, tk, &acc, &dsum);
        workgroupBarrier();
    }
    grad_store(acc, dsum, wid.z, nw0 + tn, kw0 + tk, wid.x == 0u && tk == 0u);
}

@compute @workgroup_size(64)
fn gemm_f32_sum_partials(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i < p.len_a) {
        var s = vec4<f32>(0.0);
        for (var z = 0u; z < p.splits; z++) {
            s += x[z * p.len_a + i];
        }
        out2[i] = s;
    } else if (i < p.len_a + p.len_b) {
        let j = i - p.len_a;
        var s = vec4<f32>(0.0);
        for (var z = 0u; z < p.splits; z++) {
            s += w[z * p.len_b + j];
        }
        out[j] = s;
    }
}
