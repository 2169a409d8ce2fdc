// gemm_f32.wgsl — placeholder, not yet written.
@compute @workgroup_size(1)
fn gemm_f32() {}
