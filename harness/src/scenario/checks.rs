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
    pub fn parse(key: &str, value: &toml::Value) -> Result<Check, String> {
        if key == "status" {
            let codes = match value {
                toml::Value::Integer(i) => vec![status_code(*i)?],
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| match v {
                        toml::Value::Integer(i) => status_code(*i),
                        other => Err(format!("status codes must be integers, found {other}")),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                other => {
                    return Err(format!(
                        "`status` expects a number or a list of numbers, found {other}"
                    ))
                }
            };
            if codes.is_empty() {
                return Err("`status` needs at least one code".into());
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
                return Err(format!("`body_contains` expects a string, found {value}"));
            };
            return Ok(Check {
                name: format!("body contains {s:?}"),
                kind: CheckKind::BodyContains(s.clone()),
            });
        }
        if let Some(h) = key.strip_prefix("header.") {
            let name = HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| format!("`{h}` is not a valid header name"))?;
            let toml::Value::String(s) = value else {
                return Err(format!("`{key}` expects a string, found {value}"));
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
            let expected = serde_json::to_value(value)
                .map_err(|e| format!("cannot compare with {value}: {e}"))?;
            return Ok(Check {
                name: format!("{key} == {expected}"),
                kind: CheckKind::Json { path, expected },
            });
        }
        Err(format!(
            "unknown check `{key}` (use status, body_contains, header.NAME or a JSONPath starting with $)"
        ))
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
pub fn compile_path(src: &str) -> Result<JsonPath, String> {
    JsonPath::parse(src).map_err(|e| format!("invalid JSONPath `{src}`: {e}"))
}

fn status_code(i: i64) -> Result<u16, String> {
    if (100..=599).contains(&i) {
        Ok(i as u16)
    } else {
        Err(format!("{i} is not an HTTP status code (100..599)"))
    }
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
            .contains("invalid JSONPath"));
        assert!(Check::parse("stauts", &toml::Value::Integer(1))
            .unwrap_err()
            .contains("unknown check"));
        assert!(Check::parse("status", &toml::Value::Integer(42)).is_err());
    }
}
