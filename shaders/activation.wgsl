// activation.wgsl — placeholder, not yet written (training kernels, issue 4).
@compute @workgroup_size(1)
fn activation_forward() {}
@compute @workgroup_size(1)
fn activation_backward() {}
@compute @workgroup_size(1)
fn add_f32() {}
