// pool_f32.wgsl — placeholder, not yet written (training kernels, issue 4).
@compute @workgroup_size(1)
fn max_pool_f32() {}
@compute @workgroup_size(1)
fn max_pool_f32_backward() {}
@compute @workgroup_size(1)
fn avg_pool_f32() {}
@compute @workgroup_size(1)
fn avg_pool_f32_backward() {}
