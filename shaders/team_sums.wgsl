// Per-team failure sums for canonical focal diversity: for every team in a range of bit masks
// (bit m set when model m is a member) and every member f, Σc = Σ_j |w_f ∧ w_j ∧ w_j| and
// Σc² = Σ_j Σ_k |w_f ∧ w_j ∧ w_k| over the members j, k, where w_m are the failure bitsets and
// c counts the members failing each of f's negative samples. The CPU turns them into GD.
//
// Input: triples[(f * models + j) * models + k] = samples models f, j and k all fail.
// Output: out[(index * models + slot) * 2 + {0, 1}] = (Σc, Σc²) of the team's slot-th member
// (members in ascending order); unused slots and teams of fewer than two members stay 0.
// CPU twin: `FocalTable::team_sums` in shared/src/ensemble/focal_table.rs.

struct Params {
    models: u32,
    first: u32,
    count: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> triples: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

// Must match WORKGROUP_SIZE in shaders/src/team_sums.rs.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let index = id.x + id.y * 65535u * 64u;
    if (index >= params.count) {
        return;
    }
    let mask = params.first + index;
    if (countOneBits(mask) < 2u) {
        return;
    }
    let m = params.models;
    var slot: u32 = 0u;
    for (var f: u32 = 0u; f < m; f = f + 1u) {
        if (((mask >> f) & 1u) == 0u) {
            continue;
        }
        var sum: u32 = 0u;
        var squares: u32 = 0u;
        for (var j: u32 = 0u; j < m; j = j + 1u) {
            if (((mask >> j) & 1u) == 0u) {
                continue;
            }
            let row = (f * m + j) * m;
            sum = sum + triples[row + j];
            for (var k: u32 = 0u; k < m; k = k + 1u) {
                if (((mask >> k) & 1u) != 0u) {
                    squares = squares + triples[row + k];
                }
            }
        }
        let at = (index * m + slot) * 2u;
        out[at] = sum;
        out[at + 1u] = squares;
        slot = slot + 1u;
    }
}
