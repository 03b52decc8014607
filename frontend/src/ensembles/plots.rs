//! The Ensembles page's plots, drawn as SVG so they export losslessly: focal diversity against
//! accuracy for every team, a pairwise heat-map of the pool, and both by team size.

use leptos::prelude::*;

use fuselab_shared::ensemble::{PairMatrix, Point, SizeSummary};

/// Plot size in CSS pixels (the PNG export doubles it).
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 56.0;

/// Colours for team sizes (colour-blind safe, Okabe–Ito).
const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

fn colour(size: usize) -> &'static str {
    PALETTE[(size.saturating_sub(2)) % PALETTE.len()]
}

/// The SVG element of a plot: fixed size (the PNG export doubles it), an accessible label.
fn frame(id: &'static str, label: String, body: impl IntoView) -> impl IntoView {
    view! {
        <svg
            id=id
            xmlns="http://www.w3.org/2000/svg"
            width=WIDTH
            height=HEIGHT
            viewBox=format!("0 0 {WIDTH} {HEIGHT}")
            role="img"
            aria-label=label
            font-family="system-ui, sans-serif"
        >
            {body}
        </svg>
    }
}

/// A linear map from `[lo, hi]` onto `[a, b]` with a padded, non-empty domain.
#[derive(Debug, Clone, Copy)]
struct Scale {
    lo: f64,
    hi: f64,
    a: f64,
    b: f64,
}

impl Scale {
    fn new(values: impl Iterator<Item = f64>, a: f64, b: f64) -> Self {
        let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if !lo.is_finite() || !hi.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        let pad = ((hi - lo) * 0.05).max(0.005);
        Self {
            lo: lo - pad,
            hi: hi + pad,
            a,
            b,
        }
    }

    fn at(&self, v: f64) -> f64 {
        self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)
    }

    /// About five round tick values inside the domain.
    fn ticks(&self) -> Vec<f64> {
        let raw = (self.hi - self.lo) / 5.0;
        let magnitude = 10_f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(raw);
        let mut tick = (self.lo / step).ceil() * step;
        let mut ticks = Vec::new();
        while tick <= self.hi {
            ticks.push(tick);
            tick += step;
        }
        ticks
    }
}

fn axes(x: Scale, y: Scale, x_label: &'static str, y_label: &'static str) -> impl IntoView {
    let bottom = HEIGHT - BOTTOM;
    let x_ticks = x.ticks().into_iter().map(move |t| {
        let px = x.at(t);
        view! {
            <line x1=px x2=px y1=bottom y2=bottom + 5.0 stroke="currentColor" />
            <text x=px y=bottom + 18.0 text-anchor="middle" font-size="11">{format!("{t:.2}")}</text>
        }
    });
    let y_ticks = y.ticks().into_iter().map(move |t| {
        let py = y.at(t);
        view! {
            <line x1=LEFT - 5.0 x2=LEFT y1=py y2=py stroke="currentColor" />
            <text x=LEFT - 8.0 y=py + 4.0 text-anchor="end" font-size="11">{format!("{t:.2}")}</text>
        }
    });
    view! {
        <line x1=LEFT x2=WIDTH - RIGHT y1=bottom y2=bottom stroke="currentColor" />
        <line x1=LEFT x2=LEFT y1=TOP y2=bottom stroke="currentColor" />
        {x_ticks.collect_view()}
        {y_ticks.collect_view()}
        <text x=(LEFT + WIDTH - RIGHT) / 2.0 y=HEIGHT - 14.0 text-anchor="middle" font-size="12">{x_label}</text>
        <text
            transform=format!("translate(16 {}) rotate(-90)", f64::midpoint(TOP, bottom))
            text-anchor="middle"
            font-size="12"
        >
            {y_label}
        </text>
    }
}

fn legend(sizes: &[usize]) -> impl IntoView + use<> {
    let x = WIDTH - RIGHT + 16.0;
    let items = sizes
        .iter()
        .enumerate()
        .map(|(k, &size)| {
            let y = TOP + 10.0 + k as f64 * 18.0;
            view! {
                <circle cx=x cy=y r=5 fill=colour(size) />
                <text x=x + 10.0 y=y + 4.0 font-size="11">{format!("size {size}")}</text>
            }
        })
        .collect_view();
    view! {
        <text x=x - 6.0 y=TOP font-size="11" font-weight="600">"team size"</text>
        {items}
    }
}

/// Focal diversity (x) against plurality accuracy (y) of every team, coloured by size; the
/// top-K teams are ringed, and hovering a point names its members.
#[component]
#[allow(clippy::needless_pass_by_value)] // leptos props are owned
pub fn Scatter(
    points: Vec<Point>,
    highlighted: Vec<Vec<usize>>,
    names: Vec<String>,
    on_pick: Callback<Vec<usize>>,
) -> impl IntoView {
    let x = Scale::new(points.iter().map(|p| p.focal), LEFT, WIDTH - RIGHT);
    let y = Scale::new(points.iter().map(|p| p.accuracy), HEIGHT - BOTTOM, TOP);
    let mut sizes: Vec<usize> = points.iter().map(|p| p.members.len()).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let dots = points
        .into_iter()
        .map(|p| {
            let top = highlighted.contains(&p.members);
            let label = format!(
                "{} — focal diversity {:.4}, plurality accuracy {:.4}",
                p.members
                    .iter()
                    .map(|&m| names[m].as_str())
                    .collect::<Vec<_>>()
                    .join("+"),
                p.focal,
                p.accuracy
            );
            let members = p.members.clone();
            view! {
                <circle
                    cx=x.at(p.focal)
                    cy=y.at(p.accuracy)
                    r=if top { 5.5 } else { 3.0 }
                    fill=colour(p.members.len())
                    fill-opacity=if top { "1" } else { "0.55" }
                    stroke=if top { "#000000" } else { "none" }
                    stroke-width="1.5"
                    class="point"
                    on:click=move |_| on_pick.run(members.clone())
                >
                    <title>{label}</title>
                </circle>
            }
        })
        .collect_view();
    frame(
        "plot-scatter",
        "Focal diversity against plurality accuracy of every team".to_owned(),
        view! {
        {axes(x, y, "focal diversity (canonical GD; higher = more diverse)", "plurality accuracy (fraction)")}
        {dots}
        {legend(&sizes)}
        },
    )
}

/// Reads one series out of a size summary.
type Series = fn(&SizeSummary) -> f64;

/// Mean and best focal diversity and mean plurality accuracy by team size.
#[component]
#[allow(clippy::needless_pass_by_value)] // leptos props are owned
pub fn BySize(sizes: Vec<SizeSummary>) -> impl IntoView {
    let x = Scale::new(sizes.iter().map(|s| s.size as f64), LEFT, WIDTH - RIGHT);
    let y = Scale::new(
        sizes
            .iter()
            .flat_map(|s| [s.mean_focal, s.max_focal, s.mean_accuracy, s.max_accuracy]),
        HEIGHT - BOTTOM,
        TOP,
    );
    let series: [(&str, &str, Series); 4] = [
        ("mean focal diversity", PALETTE[0], |s| s.mean_focal),
        ("best focal diversity", PALETTE[4], |s| s.max_focal),
        ("mean plurality accuracy", PALETTE[5], |s| s.mean_accuracy),
        ("best plurality accuracy", PALETTE[1], |s| s.max_accuracy),
    ];
    let lines = series
        .iter()
        .enumerate()
        .map(|(k, (name, stroke, pick))| {
            let path: Vec<String> = sizes
                .iter()
                .map(|s| format!("{:.1},{:.1}", x.at(s.size as f64), y.at(pick(s))))
                .collect();
            let marks = sizes
                .iter()
                .map(|s| {
                    view! {
                        <circle cx=x.at(s.size as f64) cy=y.at(pick(s)) r=3.5 fill=*stroke>
                            <title>{format!("size {}: {name} {:.4} ({} teams)", s.size, pick(s), s.teams)}</title>
                        </circle>
                    }
                })
                .collect_view();
            let ly = TOP + 10.0 + k as f64 * 18.0;
            let lx = WIDTH - RIGHT + 10.0;
            view! {
                <polyline points=path.join(" ") fill="none" stroke=*stroke stroke-width="2" />
                {marks}
                <line x1=lx x2=lx + 14.0 y1=ly y2=ly stroke=*stroke stroke-width="2" />
                <text x=lx + 18.0 y=ly + 4.0 font-size="10">{*name}</text>
            }
        })
        .collect_view();
    frame(
        "plot-sizes",
        "Focal diversity and accuracy by team size".to_owned(),
        view! {
        {axes(x, y, "team size (models)", "value (fraction)")}
        {lines}
        },
    )
}

/// Interpolates from a light to a dark blue for `t` in `[0, 1]`.
fn shade(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    // Between two channel values in 0..=255, so the cast is exact.
    #[allow(clippy::cast_sign_loss)]
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "rgb({},{},{})",
        mix(247.0, 8.0),
        mix(251.0, 48.0),
        mix(255.0, 107.0)
    )
}

/// The pool's pairwise statistic as a heat-map, models in pool order.
#[component]
#[allow(clippy::needless_pass_by_value)] // leptos props are owned
pub fn HeatMap(matrix: PairMatrix, names: Vec<String>) -> impl IntoView {
    let m = names.len().max(1);
    // Room for the longest name at 11 px (about 6.2 px a character), rotated 45° below.
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(1) as f64;
    let label_space = (longest * 6.2 + 10.0).clamp(50.0, 200.0);
    let caption = 22.0;
    let side = (HEIGHT - caption - label_space * 0.75).min(WIDTH - RIGHT - label_space);
    let cell = side / m as f64;
    let values: Vec<f64> = matrix.values.iter().flatten().filter_map(|v| *v).collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x0 = label_space;
    let y0 = caption;
    let cells = matrix
        .values
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row.iter().enumerate().map(move |(j, v)| (i, j, *v)))
        .map(|(i, j, v)| {
            let fill = v.map_or_else(|| "#dddddd".to_owned(), |v| shade((v - lo) / span));
            let label = format!(
                "{} × {}: {}",
                names[i],
                names[j],
                v.map_or_else(|| "undefined".to_owned(), |v| format!("{v:.4}"))
            );
            view! {
                <rect x=x0 + j as f64 * cell y=y0 + i as f64 * cell width=cell height=cell fill=fill>
                    <title>{label}</title>
                </rect>
            }
        })
        .collect_view();
    let row_labels = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            view! {
                <text x=x0 - 6.0 y=y0 + (i as f64 + 0.6) * cell text-anchor="end" font-size="11">{name.clone()}</text>
            }
        })
        .collect_view();
    let column_labels = names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let x = x0 + (j as f64 + 0.6) * cell;
            let y = y0 + side + 8.0;
            view! {
                <text transform=format!("translate({x:.1} {y:.1}) rotate(45)") font-size="11">{name.clone()}</text>
            }
        })
        .collect_view();
    let scale_x = x0 + side + 24.0;
    let gradient = (0..=10)
        .map(|k| {
            let t = f64::from(k) / 10.0;
            view! {
                <rect x=scale_x y=y0 + (1.0 - t) * (side - side / 11.0) width=14 height=side / 11.0 fill=shade(t) />
            }
        })
        .collect_view();
    frame(
        "plot-heatmap",
        format!("Pairwise {} of the models on all samples", matrix.metric),
        view! {
        {cells}
        {row_labels}
        {column_labels}
        {gradient}
        <text x=scale_x + 18.0 y=y0 + 10.0 font-size="11">{format!("{hi:.3}")}</text>
        <text x=scale_x + 18.0 y=y0 + side font-size="11">{format!("{lo:.3}")}</text>
        <text x=x0 y=14 font-size="12">{format!("pairwise {} of the models (all samples; grey: undefined)", matrix.metric)}</text>
        },
    )
}
