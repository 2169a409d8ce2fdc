// depthwise.wgsl — placeholder, not yet written.
@compute @workgroup_size(1)
fn depthwise() {}
