// quantize.wgsl — placeholder.
@compute @workgroup_size(1)
fn quantize() {}
@compute @workgroup_size(1)
fn dequantize() {}
@compute @workgroup_size(1)
fn requantize() {}
