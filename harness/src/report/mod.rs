//! Every output format in one place: a comparison of two results
//! (`comparison.rs`), an A/B verdict (`ab.rs`), the HTML page of a result
//! (`html.rs`), and the links and history lines printed after a run. A new
//! format is a variant of [`Format`] and its functions in these files.

pub mod ab;
pub mod comment;
pub mod comparison;
pub mod history;
pub mod html;
pub mod links;

use crate::compare::ab::AbResult;
use crate::compare::Comparison;

/// What `compare` and `ab` print (`--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for the console (also the `.diff` file)
    Text,
    /// A pull-request comment: the summary line first, details collapsed
    Markdown,
    /// The whole verdict as JSON
    Json,
    /// JUnit XML, one test case per gate
    Junit,
    /// One pull-request comment for GitHub (`ab`: also appended to $GITHUB_STEP_SUMMARY when set)
    Github,
    /// One merge-request comment for GitLab
    Gitlab,
}

/// A comparison in `format`; `exit_code` is recorded in the JSON.
pub fn comparison(format: Format, c: &Comparison, exit_code: u8) -> String {
    match format {
        Format::Text => comparison::text(c),
        Format::Markdown | Format::Github | Format::Gitlab => comparison::markdown(c),
        Format::Json => comparison::json(c, exit_code),
        Format::Junit => comparison::junit(c),
    }
}

/// An A/B (or calibration) result in `format`.
pub fn ab(format: Format, r: &AbResult) -> String {
    match format {
        Format::Text => ab::text(r),
        Format::Markdown => ab::markdown(r),
        Format::Github => comment::comment(r, comment::Host::Github, None),
        Format::Gitlab => comment::comment(r, comment::Host::Gitlab, None),
        Format::Json => r.to_json(),
        Format::Junit => ab::junit(r),
    }
}
