// Chameleon's P3-Mask on one face: the 112×112×3 mask δ, resized bilinearly (half-pixel
// centres) to the face's square canvas, scaled by `strength` (negative: removal), added to the
// face rectangle's pixels, rounded half up and clipped to 0..255. Alpha is kept.
//
// Input: the face rectangle's pixels as RGBA8 words (rows of `width`), then δ as f32 bits,
// interleaved (row, column, channel), from word `mask_at`.
// Output: the rectangle's new pixels, same layout.
// CPU twin: `fuselab_shared::mask::apply` in shared/src/mask/mod.rs.

struct Params {
    width: u32,
    height: u32,
    side: u32,
    offset_x: u32,
    offset_y: u32,
    strength: f32,
    mask_at: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;

const MASK_SIDE: u32 = 112u;

// Must match `sample_at` in shared/src/mask/mod.rs: the two neighbours and the second's weight.
fn sample_at(i: u32) -> vec3<f32> {
    let scale = f32(MASK_SIDE) / f32(params.side);
    let x = max((f32(i) + 0.5) * scale - 0.5, 0.0);
    let x0 = min(u32(floor(x)), MASK_SIDE - 1u);
    let x1 = min(x0 + 1u, MASK_SIDE - 1u);
    let w = clamp(x - f32(x0), 0.0, 1.0);
    return vec3<f32>(f32(x0), f32(x1), w);
}

fn delta(row: u32, col: u32, c: u32) -> f32 {
    return bitcast<f32>(input[params.mask_at + (row * MASK_SIDE + col) * 3u + c]);
}

// Must match WORKGROUP_SIDE in shaders/src/apply_mask.rs.
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let x = id.x;
    let y = id.y;
    if (x >= params.width || y >= params.height) {
        return;
    }
    let sy = sample_at(params.offset_y + y);
    let sx = sample_at(params.offset_x + x);
    let y0 = u32(sy.x);
    let y1 = u32(sy.y);
    let x0 = u32(sx.x);
    let x1 = u32(sx.y);
    let pixel = input[y * params.width + x];
    var out = pixel & 0xff000000u;
    for (var c: u32 = 0u; c < 3u; c = c + 1u) {
        let upper = delta(y0, x0, c) * (1.0 - sx.z) + delta(y0, x1, c) * sx.z;
        let lower = delta(y1, x0, c) * (1.0 - sx.z) + delta(y1, x1, c) * sx.z;
        let d = upper * (1.0 - sy.z) + lower * sy.z;
        let value = f32((pixel >> (8u * c)) & 0xffu) + params.strength * d;
        let byte = u32(clamp(floor(value + 0.5), 0.0, 255.0));
        out = out | (byte << (8u * c));
    }
    output[y * params.width + x] = out;
}
