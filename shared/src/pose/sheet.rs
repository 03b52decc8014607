//! Preview images: a skeleton drawn over a frame, and a contact sheet of clips with their true
//! skeletons.

use super::skeleton::{Keypoints, NUM_KEYPOINTS, SKELETON, Visibility};
use super::{Clip, Frame, render::clamp_index};

/// The colour of true skeletons on a contact sheet.
pub const TRUE_SKELETON_COLOUR: [u8; 3] = [0, 255, 0];
/// Largest zoom of a contact sheet.
pub const MAX_ZOOM: usize = 8;
/// Most frames per row of a contact sheet.
pub const MAX_SHEET_COLUMNS: usize = 64;
/// The contact sheet's background.
const SHEET_GREY: [u8; 3] = [32, 32, 32];
/// Pixels between cells.
const GAP: usize = 2;

/// Sets the pixel containing point `p` (frame pixels), if it is inside the frame.
fn plot(frame: &mut Frame, p: [f32; 2], colour: [u8; 3]) {
    if p[0] >= 0.0 && p[1] >= 0.0 && p[0] < frame.width as f32 && p[1] < frame.height as f32 {
        let x = clamp_index(p[0].floor(), frame.width - 1);
        let y = clamp_index(p[1].floor(), frame.height - 1);
        frame.set_pixel(x, y, colour);
    }
}

/// Draws `keypoints` on `frame` in `colour`: each edge of [`SKELETON`] whose two keypoints are
/// labelled (v ≥ 1) as a line (solid when both are visible, dashed otherwise), visible joints
/// (v = 2) as filled dots, hidden ones (v = 1) as rings; keypoints with v = 0 are not drawn.
/// Coordinates are in the frame's pixels (pixel `(x, y)` covers `[x, x + 1) × [y, y + 1)`);
/// for a prediction, pass `[2; 17]` or the predicted flags.
pub fn draw_skeleton(
    frame: &mut Frame,
    keypoints: &Keypoints,
    visibility: &Visibility,
    colour: [u8; 3],
) {
    let finite = |p: [f32; 2]| p[0].is_finite() && p[1].is_finite();
    for &(a, b) in &SKELETON {
        let (p, q) = (keypoints[a], keypoints[b]);
        if visibility[a] == 0 || visibility[b] == 0 || !finite(p) || !finite(q) {
            continue;
        }
        let dashed = visibility[a] == 1 || visibility[b] == 1;
        let (dx, dy) = (q[0] - p[0], q[1] - p[1]);
        let length = (dx * dx + dy * dy).sqrt();
        // Two samples per pixel of length, bounded by the frame's diagonal.
        let limit = 2 * (frame.width + frame.height);
        let steps = clamp_index((2.0 * length).ceil(), limit).max(1);
        for i in 0..=steps {
            if dashed && (i / 6) % 2 == 1 {
                continue;
            }
            let s = i as f32 / steps as f32;
            // Leave the hollow of a hidden joint's ring empty.
            let near = |v: u8, along: f32| v == 1 && along * length < 1.5;
            if near(visibility[a], s) || near(visibility[b], 1.0 - s) {
                continue;
            }
            plot(frame, [p[0] + s * dx, p[1] + s * dy], colour);
        }
    }
    for j in 0..NUM_KEYPOINTS {
        let p = keypoints[j];
        if visibility[j] == 0 || !finite(p) {
            continue;
        }
        // Dots of radius 1.5 pixels, rings from 1.5 to 2.5.
        let (inner, outer) = if visibility[j] == 2 {
            (-1.0, 1.5)
        } else {
            (1.5, 2.5)
        };
        let (cx, cy) = (p[0].floor(), p[1].floor());
        for dy in -3..=3 {
            for dx in -3..=3 {
                let c = [cx + dx as f32 + 0.5, cy + dy as f32 + 0.5];
                let (ex, ey) = (c[0] - p[0], c[1] - p[1]);
                let d = (ex * ex + ey * ey).sqrt();
                if d > inner && d <= outer {
                    plot(frame, c, colour);
                }
            }
        }
    }
}

/// A grid of frames, one row per clip and up to `columns` frames per row (the clip's first
/// ones), each enlarged `zoom` times (nearest neighbour) with its true skeleton drawn in
/// [`TRUE_SKELETON_COLOUR`]; cells are as large as the largest frame, 2 pixels apart on dark grey.
/// `columns` is clamped to `1..=MAX_SHEET_COLUMNS` and `zoom` to `1..=MAX_ZOOM`.
pub fn contact_sheet(clips: &[&Clip], columns: usize, zoom: usize) -> Frame {
    let columns = columns.clamp(1, MAX_SHEET_COLUMNS);
    let zoom = zoom.clamp(1, MAX_ZOOM);
    let frames = |clip: &Clip| clip.frames.len().min(clip.labels.len()).min(columns);
    let cell_w = clips
        .iter()
        .flat_map(|c| &c.frames)
        .map(|f| f.width)
        .max()
        .unwrap_or(0)
        * zoom;
    let cell_h = clips
        .iter()
        .flat_map(|c| &c.frames)
        .map(|f| f.height)
        .max()
        .unwrap_or(0)
        * zoom;
    let used = clips.iter().map(|c| frames(c)).max().unwrap_or(0);
    let mut sheet = Frame::filled(
        GAP + used * (cell_w + GAP),
        GAP + clips.len() * (cell_h + GAP),
        SHEET_GREY,
    );
    for (row, clip) in clips.iter().enumerate() {
        for (col, (frame, label)) in clip
            .frames
            .iter()
            .zip(&clip.labels)
            .take(columns)
            .enumerate()
        {
            let mut cell = Frame::filled(frame.width * zoom, frame.height * zoom, SHEET_GREY);
            for y in 0..cell.height {
                for x in 0..cell.width {
                    cell.set_pixel(x, y, frame.pixel(x / zoom, y / zoom));
                }
            }
            let z = zoom as f32;
            let keypoints = label.keypoints.map(|[x, y]| [x * z, y * z]);
            draw_skeleton(
                &mut cell,
                &keypoints,
                &label.visibility,
                TRUE_SKELETON_COLOUR,
            );
            let (x0, y0) = (GAP + col * (cell_w + GAP), GAP + row * (cell_h + GAP));
            for y in 0..cell.height {
                for x in 0..cell.width {
                    sheet.set_pixel(x0 + x, y0 + y, cell.pixel(x, y));
                }
            }
        }
    }
    sheet
}
