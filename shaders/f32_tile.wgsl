// f32_tile.wgsl — the f32 tile core shared by gemm_f32.wgsl and conv_f32.wgsl (appended to both,
// after the kernel and before common.wgsl): tile sizes, the workgroup tiles, the slab product of
// the forward and input-gradient GEMMs, and the slab and store of the weight gradients. The
// store uses the includer's bindings out2 (dw partials), out (db partials) and Params p (n, k4).
//
// GEMM tiling: a 64×64 output tile per workgroup of 256 invocations; each invocation owns a 4×4
// block at (tr, tc); K slabs of 8 vec4 (32 K elements) are staged k-major in xs/ws.
// Weight-gradient tiling: a 64-row × 16-word (64-column) dw tile per workgroup; invocation
// (tn, tk) = (lid / 16, lid % 16) owns dw rows 4·tn.. (one dy word) × x word tk; slabs of 32 rows
// stage dy in xs[q·16 + word] and x in ws[q·16 + word], and each row adds an outer product.

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK4: u32 = 8u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const WG: u32 = 256u;
const BP: u32 = 32u; // weight gradient: rows per slab
const TW: u32 = 16u; // weight gradient: words per tile side

var<workgroup> xs: array<vec4<f32>, BK4 * BM>;
var<workgroup> ws: array<vec4<f32>, BK4 * BN>;

// acc += (staged x rows tr..tr+3) · (staged w rows tc..tc+3)ᵀ over one slab.
fn mma(tr: u32, tc: u32, acc: ptr<function, array<vec4<f32>, TM>>) {
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
            (*acc)[i] += vec4<f32>(dot(xr[i], wr[0]), dot(xr[i], wr[1]), dot(xr[i], wr[2]), dot(xr[i], wr[3]));
        }
    }
}

// acc[i] += dy[q].i · x[q] and dsum += dy[q] over the BP staged rows q.
fn grad_slab(tn: u32, tk: u32, acc: ptr<function, array<vec4<f32>, 4>>, dsum: ptr<function, vec4<f32>>) {
    for (var q = 0u; q < BP; q++) {
        let d = xs[q * TW + tn];
        let v = ws[q * TW + tk];
        (*acc)[0] += d.x * v;
        (*acc)[1] += d.y * v;
        (*acc)[2] += d.z * v;
        (*acc)[3] += d.w * v;
        *dsum += d;
    }
}

// Store split z's partials: dw rows 4·nw.. at word gk, and (first column tile, tk = 0) db word nw.
fn grad_store(acc: array<vec4<f32>, 4>, dsum: vec4<f32>, z: u32, nw: u32, gk: u32, db_lane: bool) {
    if (nw >= p.n / 4u) {
        return;
    }
    if (gk < p.k4) {
        for (var i = 0u; i < 4u; i++) {
            out2[(z * p.n + 4u * nw + i) * p.k4 + gk] = acc[i];
        }
    }
    if (db_lane) {
        out[z * (p.n / 4u) + nw] = dsum;
    }
}
