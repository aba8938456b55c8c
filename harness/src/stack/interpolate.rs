//! Compose-style variable interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?error}`, `${VAR?error}` and `$$` for a literal `$`.

use std::collections::HashMap;

/// Where variables come from: the process environment over `.env`.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;
}

impl Lookup for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// Replaces every variable reference in `s`. Errors name the variable.
pub fn interpolate(s: &str, vars: &dyn Lookup) -> Result<String, String> {
    // Defaults may hold references, expanded recursively: bound the depth
    // before recursing, so a hostile file cannot exhaust the stack.
    if nesting(s) > MAX_NESTING {
        return Err(format!(
            "`{}...`: variable references nested more than {MAX_NESTING} deep",
            s.chars().take(40).collect::<String>()
        ));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = closing_brace(r).ok_or_else(|| format!("`${{{r}`: missing closing `}}`"))?;
            out.push_str(&expand(&r[..end], vars)?);
            rest = &r[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 || after.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!("`${after}`: a lone `$` must be written `$$`"));
            }
            out.push_str(&vars.get(&after[..len]).unwrap_or_default());
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// How deep `${` references may nest inside defaults.
const MAX_NESTING: usize = 16;

/// The deepest nesting of `${` in `s` (unclosed ones count).
fn nesting(s: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
                i += 1;
            }
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// Index of the `}` closing a `${`, allowing nested `${...}` in defaults.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn expand(inner: &str, vars: &dyn Lookup) -> Result<String, String> {
    let name_len = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, op) = inner.split_at(name_len);
    if name.is_empty() {
        return Err(format!("`${{{inner}}}`: missing variable name"));
    }
    let value = vars.get(name);
    let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    let (kind, arg) = if let Some(a) = op.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = op.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = op.strip_prefix('-') {
        ("-", a)
    } else if let Some(a) = op.strip_prefix('?') {
        ("?", a)
    } else if op.is_empty() {
        ("", "")
    } else {
        return Err(format!("`${{{inner}}}`: unsupported modifier `{op}`"));
    };
    match kind {
        "" => Ok(value.unwrap_or_default()),
        ":-" if set_nonempty => Ok(value.unwrap_or_default()),
        ":-" => interpolate(arg, vars),
        "-" => match value {
            Some(v) => Ok(v),
            None => interpolate(arg, vars),
        },
        ":?" if set_nonempty => Ok(value.unwrap_or_default()),
        "?" if value.is_some() => Ok(value.unwrap_or_default()),
        _ => {
            let msg = interpolate(arg, vars)?;
            Err(if msg.is_empty() {
                format!("required variable {name} is not set")
            } else {
                format!("required variable {name} is not set: {msg}")
            })
        }
    }
}

/// Reads a `.env` file: `KEY=value` lines, `#` comments, optional quotes, `export ` prefix.
pub fn parse_dotenv(text: &str) -> Result<HashMap<String, String>, String> {
    let mut m = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l);
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected KEY=value, found `{line}`", i + 1))?;
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("line {}: `{k}` is not a variable name", i + 1));
        }
        let v = v.trim();
        let v = if (v.starts_with('"') && v.ends_with('"') && v.len() >= 2)
            || (v.starts_with('\'') && v.ends_with('\'') && v.len() >= 2)
        {
            v[1..v.len() - 1].to_string()
        } else {
            // An unquoted value ends at an inline comment.
            v.split(" #").next().unwrap_or("").trim_end().to_string()
        };
        m.insert(k.to_string(), v);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        [("A", "x"), ("EMPTY", ""), ("IMG", "postgres:16")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_form_expands() {
        let v = vars();
        assert_eq!(interpolate("$A-${A}", &v).unwrap(), "x-x");
        assert_eq!(interpolate("${MISSING:-d}", &v).unwrap(), "d");
        assert_eq!(interpolate("${EMPTY:-d}", &v).unwrap(), "d");
        assert_eq!(interpolate("${EMPTY-d}", &v).unwrap(), "");
        assert_eq!(interpolate("${MISSING-d}", &v).unwrap(), "d");
        assert_eq!(
            interpolate("${IMG:-postgres:15}", &v).unwrap(),
            "postgres:16"
        );
        assert_eq!(interpolate("${MISSING:-${A}}", &v).unwrap(), "x");
        assert_eq!(interpolate("cost $$5 $$A", &v).unwrap(), "cost $5 $A");
        assert_eq!(interpolate("${MISSING}", &v).unwrap(), "");
        assert_eq!(interpolate("${A:?needed}", &v).unwrap(), "x");
    }

    #[test]
    fn errors_name_the_variable() {
        let v = vars();
        assert_eq!(
            interpolate("${DB_URL:?set it in .env}", &v).unwrap_err(),
            "required variable DB_URL is not set: set it in .env"
        );
        assert!(interpolate("${EMPTY:?}", &v).unwrap_err().contains("EMPTY"));
        assert!(interpolate("${EMPTY?}", &v).is_ok());
        assert!(interpolate("${A", &v).unwrap_err().contains("closing"));
        assert!(interpolate("a $ b", &v).unwrap_err().contains("$$"));
        assert!(interpolate("${A/x/y}", &v)
            .unwrap_err()
            .contains("unsupported"));
    }

    #[test]
    fn dotenv_lines() {
        let m = parse_dotenv("# c\nA=1\nexport B = \"two words\"\nC='q'\nD=v # note\n\n").unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "q");
        assert_eq!(m["D"], "v");
        assert!(parse_dotenv("oops").unwrap_err().contains("line 1"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "${X:-".repeat(200_000) + &"}".repeat(200_000);
        let e = interpolate(&deep, &vars()).unwrap_err();
        assert!(e.contains("nested more than 16 deep"), "{e}");
        let fine = "${A:-${B:-${C:-x}}}";
        assert_eq!(interpolate(fine, &vars()).unwrap(), "x");
    }
}
