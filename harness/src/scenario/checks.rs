//! Response checks: counted, never fatal during the load (k6's semantics).

use http::{HeaderMap, HeaderName};
use serde_json_path::JsonPath;

#[derive(Debug)]
pub enum CheckKind {
    /// The status is one of these.
    Status(Vec<u16>),
    /// The first node the JSONPath selects equals the value.
    Json {
        path: JsonPath,
        expected: serde_json::Value,
    },
    /// The body contains this text.
    BodyContains(String),
    /// The header is present with exactly this value.
    Header { name: HeaderName, expected: String },
}

#[derive(Debug)]
pub struct Check {
    /// Display name, e.g. `status is 200` or `$.status == "succeeded"`.
    pub name: String,
    pub kind: CheckKind,
}

impl Check {
    /// Builds a check from its TOML key and value.
    pub fn parse(key: &str, value: &toml::Value) -> Result<Check, CheckError> {
        if key == "status" {
            let codes = match value {
                toml::Value::Integer(i) => vec![status_code(*i)?],
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| match v {
                        toml::Value::Integer(i) => status_code(*i),
                        other => Err(CheckError::StatusNotInteger(other.to_string())),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                other => return Err(CheckError::StatusShape(other.to_string())),
            };
            if codes.is_empty() {
                return Err(CheckError::NoStatus);
            }
            let shown: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
            let name = if codes.len() == 1 {
                format!("status is {}", shown[0])
            } else {
                format!("status in [{}]", shown.join(", "))
            };
            return Ok(Check {
                name,
                kind: CheckKind::Status(codes),
            });
        }
        if key == "body_contains" {
            let toml::Value::String(s) = value else {
                return Err(CheckError::BodyNotString(value.to_string()));
            };
            return Ok(Check {
                name: format!("body contains {s:?}"),
                kind: CheckKind::BodyContains(s.clone()),
            });
        }
        if let Some(h) = key.strip_prefix("header.") {
            let name = HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| CheckError::HeaderName(h.to_string()))?;
            let toml::Value::String(s) = value else {
                return Err(CheckError::HeaderNotString {
                    key: key.to_string(),
                    value: value.to_string(),
                });
            };
            return Ok(Check {
                name: format!("header {h} is {s:?}"),
                kind: CheckKind::Header {
                    name,
                    expected: s.clone(),
                },
            });
        }
        if key.starts_with('$') {
            let path = compile_path(key)?;
            let expected = serde_json::to_value(value).map_err(|e| CheckError::Expected {
                value: value.to_string(),
                reason: e.to_string(),
            })?;
            return Ok(Check {
                name: format!("{key} == {expected}"),
                kind: CheckKind::Json { path, expected },
            });
        }
        Err(CheckError::Unknown(key.to_string()))
    }

    /// Whether the check reads the body at all.
    pub fn needs_body(&self) -> bool {
        matches!(
            self.kind,
            CheckKind::Json { .. } | CheckKind::BodyContains(_)
        )
    }

    pub fn needs_json(&self) -> bool {
        matches!(self.kind, CheckKind::Json { .. })
    }

    pub fn passes(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        json: Option<&serde_json::Value>,
    ) -> bool {
        match &self.kind {
            CheckKind::Status(codes) => codes.contains(&status),
            CheckKind::BodyContains(s) => memchr_contains(body, s.as_bytes()),
            CheckKind::Header { name, expected } => headers
                .get(name)
                .is_some_and(|v| v.as_bytes() == expected.as_bytes()),
            CheckKind::Json { path, expected } => json
                .and_then(|j| path.query(j).first())
                .is_some_and(|found| json_equal(found, expected)),
        }
    }
}

/// Compiles a JSONPath with an error message that says what is wrong.
pub fn compile_path(src: &str) -> Result<JsonPath, CheckError> {
    JsonPath::parse(src).map_err(|e| CheckError::JsonPath {
        src: src.to_string(),
        reason: e.to_string(),
    })
}

fn status_code(i: i64) -> Result<u16, CheckError> {
    if (100..=599).contains(&i) {
        Ok(i as u16)
    } else {
        Err(CheckError::NotAStatus(i))
    }
}

/// A check (or JSONPath) in a scenario that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("status codes must be integers, found {0}")]
    StatusNotInteger(String),
    #[error("`status` expects a number or a list of numbers, found {0}")]
    StatusShape(String),
    #[error("`status` needs at least one code")]
    NoStatus,
    #[error("{0} is not an HTTP status code (100..599)")]
    NotAStatus(i64),
    #[error("`body_contains` expects a string, found {0}")]
    BodyNotString(String),
    #[error("`{0}` is not a valid header name")]
    HeaderName(String),
    #[error("`{key}` expects a string, found {value}")]
    HeaderNotString { key: String, value: String },
    #[error("invalid JSONPath `{src}`: {reason}")]
    JsonPath { src: String, reason: String },
    #[error("cannot compare with {value}: {reason}")]
    Expected { value: String, reason: String },
    #[error("unknown check `{0}` (use status, body_contains, header.NAME or a JSONPath starting with $)")]
    Unknown(String),
}

/// Numbers compare by value so that `200` matches `200.0`.
fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

fn memchr_contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_json_checks() {
        let c = Check::parse("status", &toml::Value::Integer(200)).unwrap();
        assert_eq!(c.name, "status is 200");
        assert!(c.passes(200, &HeaderMap::new(), b"", None));
        assert!(!c.passes(500, &HeaderMap::new(), b"", None));

        let j = Check::parse("$.status", &toml::Value::String("succeeded".into())).unwrap();
        let body: serde_json::Value = serde_json::json!({"status": "succeeded"});
        assert!(j.passes(200, &HeaderMap::new(), b"", Some(&body)));
        let other = serde_json::json!({"status": "failed"});
        assert!(!j.passes(200, &HeaderMap::new(), b"", Some(&other)));
        assert!(!j.passes(200, &HeaderMap::new(), b"", None));

        let n = Check::parse("$.amount", &toml::Value::Integer(5)).unwrap();
        assert!(n.passes(
            200,
            &HeaderMap::new(),
            b"",
            Some(&serde_json::json!({"amount": 5.0}))
        ));
    }

    #[test]
    fn header_and_body_checks() {
        let h = Check::parse(
            "header.content-type",
            &toml::Value::String("application/json".into()),
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        assert!(h.passes(200, &headers, b"", None));
        assert!(!h.passes(200, &HeaderMap::new(), b"", None));
        let b = Check::parse("body_contains", &toml::Value::String("ok".into())).unwrap();
        assert!(b.passes(200, &headers, b"{\"status\":\"ok\"}", None));
        assert!(!b.passes(200, &headers, b"nope", None));
    }

    #[test]
    fn bad_checks_are_rejected() {
        assert!(Check::parse("$.[", &toml::Value::Integer(1))
            .unwrap_err()
            .to_string()
            .contains("invalid JSONPath"));
        assert!(Check::parse("stauts", &toml::Value::Integer(1))
            .unwrap_err()
            .to_string()
            .contains("unknown check"));
        assert!(Check::parse("status", &toml::Value::Integer(42)).is_err());
    }
}
