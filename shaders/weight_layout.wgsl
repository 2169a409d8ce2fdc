// weight_layout.wgsl — the two weight layouts of a training unit's W̃ (src/train/gpu/weights.rs),
// shared by fold.wgsl and fake_quant_rows.wgsl (appended by src/gpu/kernels.rs; no entry points,
// no bindings). arrangement 0: value j of channel c at c·per + j (dense rows); 1: at j·cp + c
// (depthwise [kh][kw][CP]).

// Offset of value j of channel c.
fn layout_offset(arrangement: u32, per: u32, cp: u32, c: u32, j: u32) -> u32 {
    if (arrangement == 0u) {
        return c * per + j;
    }
    return j * cp + c;
}

// The channel of element i (padded channels ≥ c included).
fn layout_channel(arrangement: u32, per: u32, cp: u32, i: u32) -> u32 {
    if (arrangement == 0u) {
        return i / per;
    }
    return i % cp;
}
