//! Seeing a run as it happens: the live page served during a run, and the
//! look and chart drawing it shares with the HTML report (`report::html`):
//! both draw with the same small script (assets/charts.js); nothing is
//! fetched from outside the page or the harness.

pub mod live;

/// The shared look and chart drawing, embedded in the binary.
pub(crate) const CSS: &str = include_str!("assets/style.css");
pub(crate) const CHARTS_JS: &str = include_str!("assets/charts.js");

/// JSON that can sit inside a `<script>` element: `<` only occurs inside
/// strings, where `\u003c` means the same, so `</script>` cannot end it early.
pub(crate) fn script_json(v: &serde_json::Value) -> String {
    v.to_string().replace('<', "\\u003c")
}

fn fixed(v: f64, places: usize) -> String {
    format!("{v:.places$}")
}

/// Milliseconds as a table shows them.
pub(crate) fn ms(v: f64) -> String {
    if v >= 100.0 {
        fixed(v, 0)
    } else if v >= 10.0 {
        fixed(v, 1)
    } else {
        fixed(v, 2)
    }
}
