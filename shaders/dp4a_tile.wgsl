// dp4a_tile.wgsl — the tile core shared by gemm.wgsl and conv.wgsl (appended to both, after the
// kernel and before common.wgsl): tile sizes, the k-major workgroup tiles, the slab product and
// the fused epilogue store. It uses the includer's bindings (wsum, bias, shift, out) and its
// Params fields m, n, x_xor, clamp_lo, clamp_hi, out_mode, out_signed, n_valid.
//
// Tiling: a 64×64 output tile per workgroup of 256 invocations; each invocation owns a 4×4
// block at (tr, tc); K slabs of 8 words (32 codes) are staged k-major in xs/ws.

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK4: u32 = 8u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const WG: u32 = 256u;

var<workgroup> xs: array<u32, BK4 * BM>;
var<workgroup> ws: array<u32, BK4 * BN>;

// acc += (staged x rows tr..tr+3) · (staged w rows tc..tc+3)ᵀ over one slab.
fn slab_product(acc: ptr<function, array<array<i32, TN>, TM>>, tr: u32, tc: u32) {
    for (var k = 0u; k < BK4; k++) {
        var xr: array<u32, TM>;
        var wr: array<u32, TN>;
        for (var i = 0u; i < TM; i++) {
            xr[i] = xs[k * BM + tr + i];
        }
        for (var j = 0u; j < TN; j++) {
            wr[j] = ws[k * BN + tc + j];
        }
        for (var i = 0u; i < TM; i++) {
            for (var j = 0u; j < TN; j++) {
                (*acc)[i][j] += dot4I8Packed(xr[i], wr[j]);
            }
        }
    }
}

// Add the uint8 correction (128·Σw, a shift) and the bias, requantize, and store the 4×4 block
// whose top-left output is (row, c): packed codes or int32. Lanes at or past n_valid are 0.
fn store_block(acc: ptr<function, array<array<i32, TN>, TM>>, row: u32, c: u32) {
    if (c >= p.n) {
        return;
    }
    var corr: array<i32, TN>;
    for (var j = 0u; j < TN; j++) {
        corr[j] = select(0, wsum[c + j] << 7u, p.x_xor != 0u);
    }
    let valid = vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.n_valid);
    for (var i = 0u; i < TM; i++) {
        let r = row + i;
        if (r >= p.m) {
            continue;
        }
        var q: vec4<i32>;
        for (var j = 0u; j < TN; j++) {
            let a = sat_add((*acc)[i][j] + corr[j], bias[c + j]);
            q[j] = epilogue_value(a, shift[c + j], p.clamp_lo, p.clamp_hi, p.out_mode, p.out_signed);
        }
        q = select(vec4<i32>(0), q, valid);
        if (p.out_mode == 0u) {
            out[(r * p.n + c) / 4u] = pack_codes(q, p.out_signed);
        } else {
            for (var j = 0u; j < TN; j++) {
                out[r * p.n + c + j] = bitcast<u32>(q[j]);
            }
        }
    }
}
