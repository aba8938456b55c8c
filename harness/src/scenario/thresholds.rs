//! Pass/fail criteria in k6's syntax: `p(95) < 200`, `rate < 0.01`, `count > 10`,
//! with an optional `{name:...}` filter on the metric.

use std::fmt;
use std::time::Duration;

/// Metrics a threshold can refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    HttpReqDuration,
    IterationDuration,
    HttpReqFailed,
    Checks,
    HttpReqs,
    Iterations,
    DroppedIterations,
    DataSent,
    DataReceived,
    VusMax,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Trend,
    Rate,
    Counter,
    Gauge,
}

impl Metric {
    const ALL: &'static [(&'static str, Metric)] = &[
        ("http_req_duration", Metric::HttpReqDuration),
        ("iteration_duration", Metric::IterationDuration),
        ("http_req_failed", Metric::HttpReqFailed),
        ("checks", Metric::Checks),
        ("http_reqs", Metric::HttpReqs),
        ("iterations", Metric::Iterations),
        ("dropped_iterations", Metric::DroppedIterations),
        ("data_sent", Metric::DataSent),
        ("data_received", Metric::DataReceived),
        ("vus_max", Metric::VusMax),
    ];

    fn family(self) -> Family {
        match self {
            Metric::HttpReqDuration | Metric::IterationDuration => Family::Trend,
            Metric::HttpReqFailed | Metric::Checks => Family::Rate,
            Metric::VusMax => Family::Gauge,
            _ => Family::Counter,
        }
    }

    fn filterable(self) -> bool {
        matches!(
            self,
            Metric::HttpReqDuration | Metric::HttpReqFailed | Metric::HttpReqs | Metric::Checks
        )
    }
}

/// The aggregate a threshold compares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Agg {
    Avg,
    Min,
    Med,
    Max,
    /// Percentile in 0..=100.
    P(f64),
    Rate,
    Count,
    Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Threshold {
    /// The metric key as written, e.g. `http_req_duration{name:confirm payment}`.
    pub key: String,
    pub metric: Metric,
    /// Request (step) name from a `{name:...}` filter.
    pub name: Option<String>,
    /// The expression as written, e.g. `p(90) < 500`.
    pub expression: String,
    pub agg: Agg,
    pub op: Op,
    pub limit: f64,
    pub abort_on_fail: bool,
    pub delay_abort_eval: Duration,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.expression)
    }
}

/// Splits `metric{name:value}` into the metric and its filter.
pub fn parse_key(key: &str) -> Result<(Metric, Option<String>), String> {
    let (base, filter) = match key.find('{') {
        Some(i) => {
            let rest = &key[i + 1..];
            let inner = rest
                .strip_suffix('}')
                .ok_or_else(|| format!("`{key}`: the filter must end with `}}`"))?;
            (&key[..i], Some(inner))
        }
        None => (key, None),
    };
    let metric = Metric::ALL
        .iter()
        .find(|(n, _)| *n == base.trim())
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            let known: Vec<&str> = Metric::ALL.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown metric `{}` (known: {})",
                base.trim(),
                known.join(", ")
            )
        })?;
    let name = match filter {
        None => None,
        Some(f) => {
            let (k, v) = f
                .split_once(':')
                .ok_or_else(|| format!("`{key}`: a filter is written {{name:REQUEST NAME}}"))?;
            if k.trim() != "name" {
                return Err(format!(
                    "`{key}`: only the `name` filter is supported (the request's step name)"
                ));
            }
            if !metric.filterable() {
                return Err(format!(
                    "`{key}`: this metric cannot be filtered by request name"
                ));
            }
            Some(v.trim().to_string())
        }
    };
    Ok((metric, name))
}

/// Parses one expression such as `p(99.9) <= 800` for the given metric.
pub fn parse_expression(metric: Metric, expr: &str) -> Result<(Agg, Op, f64), String> {
    let s = expr.trim();
    let ops: [(&str, Op); 6] = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    let (pos, len, op) = ops
        .iter()
        .filter_map(|(t, op)| s.find(t).map(|p| (p, t.len(), *op)))
        .min_by_key(|(p, l, _)| (*p, usize::MAX - l))
        .ok_or_else(|| format!("`{expr}`: missing a comparison (<, <=, >, >=, ==, !=)"))?;
    let lhs = s[..pos].trim();
    let rhs = s[pos + len..].trim();
    let limit: f64 = rhs
        .parse()
        .map_err(|_| format!("`{expr}`: `{rhs}` is not a number"))?;
    let agg = match lhs {
        "avg" => Agg::Avg,
        "min" => Agg::Min,
        "med" => Agg::Med,
        "max" => Agg::Max,
        "rate" => Agg::Rate,
        "count" => Agg::Count,
        "value" => Agg::Value,
        other => {
            let inner = other
                .strip_prefix("p(")
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| {
                    format!("`{expr}`: unknown aggregate `{other}` (avg, min, med, max, p(N), rate, count, value)")
                })?;
            let p: f64 = inner
                .trim()
                .parse()
                .map_err(|_| format!("`{expr}`: `{inner}` is not a percentile"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("`{expr}`: a percentile lies between 0 and 100"));
            }
            Agg::P(p)
        }
    };
    let fits = match metric.family() {
        Family::Trend => matches!(agg, Agg::Avg | Agg::Min | Agg::Med | Agg::Max | Agg::P(_)),
        Family::Rate => agg == Agg::Rate,
        Family::Counter => matches!(agg, Agg::Count | Agg::Rate),
        Family::Gauge => agg == Agg::Value,
    };
    if !fits {
        let allowed = match metric.family() {
            Family::Trend => "avg, min, med, max, p(N)",
            Family::Rate => "rate",
            Family::Counter => "count, rate",
            Family::Gauge => "value",
        };
        return Err(format!("`{expr}`: this metric takes {allowed}"));
    }
    Ok((agg, op, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_filters() {
        assert_eq!(
            parse_key("http_req_duration").unwrap(),
            (Metric::HttpReqDuration, None)
        );
        assert_eq!(
            parse_key("http_req_duration{name:confirm payment}").unwrap(),
            (Metric::HttpReqDuration, Some("confirm payment".into()))
        );
        assert!(parse_key("http_req_durations")
            .unwrap_err()
            .contains("unknown metric"));
        assert!(parse_key("http_req_duration{status:200}").is_err());
        assert!(parse_key("vus_max{name:x}").is_err());
    }

    #[test]
    fn parses_expressions() {
        assert_eq!(
            parse_expression(Metric::HttpReqDuration, "p(90) < 500").unwrap(),
            (Agg::P(90.0), Op::Lt, 500.0)
        );
        assert_eq!(
            parse_expression(Metric::HttpReqDuration, "avg<=20.5").unwrap(),
            (Agg::Avg, Op::Le, 20.5)
        );
        assert_eq!(
            parse_expression(Metric::HttpReqFailed, "rate < 0.01").unwrap(),
            (Agg::Rate, Op::Lt, 0.01)
        );
        assert_eq!(
            parse_expression(Metric::Checks, "rate>0.99").unwrap(),
            (Agg::Rate, Op::Gt, 0.99)
        );
        assert_eq!(
            parse_expression(Metric::HttpReqs, "count >= 10").unwrap(),
            (Agg::Count, Op::Ge, 10.0)
        );
    }

    #[test]
    fn rejects_malformed_expressions() {
        assert!(parse_expression(Metric::HttpReqDuration, "p90 < 5").is_err());
        assert!(parse_expression(Metric::HttpReqDuration, "p(90) 5").is_err());
        assert!(parse_expression(Metric::HttpReqDuration, "p(90) < fast").is_err());
        assert!(parse_expression(Metric::HttpReqDuration, "rate < 5").is_err());
        assert!(parse_expression(Metric::HttpReqFailed, "p(95) < 5").is_err());
        assert!(parse_expression(Metric::HttpReqDuration, "p(120) < 5").is_err());
    }
}
