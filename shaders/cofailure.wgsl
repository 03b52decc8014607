// Pairwise co-failure counts of a model pool.
//
// Input: one bit per (model, sample), set when the model fails the sample, packed 32 samples per
// u32; model m's words are masks[m * words .. (m + 1) * words]; padding bits are zero.
// Output: counts[i * models + j] = number of samples that models i and j both fail.
// CPU twin: `FailureMasks::cofailure_counts` in shared/src/cofailure.rs.

struct Params {
    models: u32,
    words: u32,
    samples: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> masks: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts: array<u32>;

// Must match WORKGROUP_SIDE in shaders/src/cofailure.rs.
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    let j = id.y;
    if (i >= params.models || j >= params.models) {
        return;
    }
    let row_i = i * params.words;
    let row_j = j * params.words;
    var both: u32 = 0u;
    for (var w: u32 = 0u; w < params.words; w = w + 1u) {
        both = both + countOneBits(masks[row_i + w] & masks[row_j + w]);
    }
    counts[i * params.models + j] = both;
}
