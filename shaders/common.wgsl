// common.wgsl — fixed-point helpers shared by every int8 kernel (appended after each kernel's
// source, so the kernel's line numbers stay right). The GPU twin of src/fixed.rs:
// rounding half-to-even shifts, symmetric int32 saturation, 8-bit code ranges.

const I32_SAT: i32 = 2147483647;

// Saturating a + b to ±(2^31 − 1), branch-free: the sum overflowed iff a and b share a sign
// that the wrapped sum does not.
fn sat_add(a: i32, b: i32) -> i32 {
    let s = a + b; // wraps on overflow
    let overflow = ((a ^ s) & (b ^ s)) < 0;
    return select(max(s, -I32_SAT), select(I32_SAT, -I32_SAT, a < 0), overflow);
}

// Arithmetic shift with F8Net rounding: shift > 0 divides by 2^shift rounding half to even,
// shift < 0 multiplies by 2^-shift saturating to ±(2^31 − 1). |shift| <= 31.
fn shift_round(acc: i32, shift: i32) -> i32 {
    if (shift > 0) {
        let s = u32(shift);
        let floor = acc >> s;
        let rem = acc & ((1 << s) - 1);
        let half = 1 << (s - 1u);
        let up = rem > half || (rem == half && (floor & 1) == 1);
        return floor + select(0, 1, up);
    }
    if (shift < 0) {
        let s = u32(-shift);
        let limit = I32_SAT >> s;
        if (acc > limit) {
            return I32_SAT;
        }
        if (acc < -limit) {
            return -I32_SAT;
        }
        return acc << s;
    }
    return max(acc, -I32_SAT);
}

// Code range of an 8-bit format: signed = symmetric int8, else uint8.
fn code_lo(signed: u32) -> i32 {
    return select(0, -127, signed != 0u);
}

fn code_hi(signed: u32) -> i32 {
    return select(255, 127, signed != 0u);
}

// Pack four codes (already inside the format's range) into one word, lane 0 in the low byte.
fn pack_codes(v: vec4<i32>, signed: u32) -> u32 {
    if (signed != 0u) {
        return pack4xI8(v);
    }
    return pack4xU8(vec4<u32>(v));
}

// Unpack one word of four codes.
fn unpack_codes(w: u32, signed: u32) -> vec4<i32> {
    if (signed != 0u) {
        return unpack4xI8(w);
    }
    return vec4<i32>(unpack4xU8(w));
}

// The fused epilogue of conv/linear/depthwise kernels, after the bias was added
// (src/reference/mod.rs `EpilogueSpec::apply`): rounding shift, the layer's clamp
// (ReLU/ReLU6, in output units), then the 8-bit code range for packed outputs.
fn epilogue_value(a: i32, shift: i32, clamp_lo: i32, clamp_hi: i32, out_mode: u32, out_signed: u32) -> i32 {
    let v = clamp(shift_round(a, shift), clamp_lo, clamp_hi);
    if (out_mode == 0u) {
        return clamp(v, code_lo(out_signed), code_hi(out_signed));
    }
    return v;
}
