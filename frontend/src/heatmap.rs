//! The colours of a heat-map cell: white (0) to deep blue (1), as H3Fusion's report draws its
//! routing, with black or white numbers, whichever keeps WCAG AA contrast.
//!
//! Plain logic, compiled natively too, so its unit tests run without a browser.

/// The cell's background (`rgb(…)`) and text colour for a probability `p` (clamped to 0..=1).
pub fn cell_colours(p: f64) -> (String, &'static str) {
    let shade = shade(p);
    // Below 96 the blue is dark enough for white text at 4.5:1; from 96, black text has it.
    let text = if shade < 96 { "#fff" } else { "#000" };
    (format!("rgb({shade},{shade},255)"), text)
}

/// The red and green channels of the cell's colour.
fn shade(p: f64) -> u8 {
    // In 0..=255 after the clamp.
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    let shade = (255.0 * (1.0 - p.clamp(0.0, 1.0))).round() as u8;
    shade
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luminance([r, g, b]: [u8; 3]) -> f64 {
        let linear = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.040_45 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    }

    fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
        let (a, b) = (luminance(a), luminance(b));
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    #[test]
    fn every_cell_keeps_aa_contrast() {
        for i in 0..=1000 {
            let p = f64::from(i) / 1000.0;
            let (background, text) = cell_colours(p);
            let s = shade(p);
            assert_eq!(background, format!("rgb({s},{s},255)"));
            let text = if text == "#fff" { [255; 3] } else { [0; 3] };
            let ratio = contrast([s, s, 255], text);
            assert!(ratio >= 4.5, "p {p}: {ratio:.2}");
        }
    }

    #[test]
    fn zero_is_white_and_one_is_blue_and_out_of_range_is_clamped() {
        assert_eq!(cell_colours(0.0).0, "rgb(255,255,255)");
        assert_eq!(cell_colours(1.0).0, "rgb(0,0,255)");
        assert_eq!(cell_colours(-3.0), cell_colours(0.0));
        assert_eq!(cell_colours(7.0), cell_colours(1.0));
        assert_eq!(cell_colours(f64::NAN).0, "rgb(0,0,255)");
    }
}
