//! Templates in paths, headers and bodies (`{{ api_key }}`, `{{ uuid() }}`),
//! compiled once at load time and rendered per request.

use std::collections::HashSet;

use minijinja::{Environment, UndefinedBehavior, Value};

/// Functions every template may call.
pub const FUNCTIONS: &[&str] = &["uuid", "random_string", "random_int", "now_ms"];

/// Instructions one render may run (far above any request's template).
pub const TEMPLATE_FUEL: u64 = 1_000_000;

/// The longest `random_string` (1 MB): a body, not the machine's memory.
pub const MAX_RANDOM_STRING: usize = 1_000_000;
/// Globals minijinja itself provides; not variables.
const BUILTIN_GLOBALS: &[&str] = &["range", "dict", "debug", "namespace"];
/// Variables the engine always provides.
pub const BUILTIN_VARS: &[&str] = &["env", "vu", "iter"];

/// A piece of text that is either fixed or rendered per request.
#[derive(Clone, Debug)]
pub enum Text {
    Static(String),
    /// Name of the compiled template inside [`Templates`].
    Template(String),
}

impl Text {
    pub fn is_static(&self) -> bool {
        matches!(self, Text::Static(_))
    }
}

pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        // Strict: a missing variable is an error, never an empty string sent to the server.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // A template is a request's text, not a program: a bounded amount of
        // work per render (nested loops of a hundred thousand fail fast).
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.add_function("uuid", || uuid::Uuid::new_v4().to_string());
        env.add_function(
            "random_string",
            |n: usize| -> Result<String, minijinja::Error> {
                if n > MAX_RANDOM_STRING {
                    return Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("random_string({n}): at most {MAX_RANDOM_STRING} characters"),
                    ));
                }
                Ok(std::iter::repeat_with(fastrand::alphanumeric)
                    .take(n)
                    .collect())
            },
        );
        env.add_function(
            "random_int",
            |a: i64, b: i64| -> Result<i64, minijinja::Error> {
                if a > b {
                    return Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("random_int({a}, {b}): the first bound must not exceed the second"),
                    ));
                }
                Ok(fastrand::i64(a..=b))
            },
        );
        env.add_function("now_ms", || -> i64 {
            chrono::Utc::now().timestamp_millis()
        });
        Templates { env }
    }

    /// Compiles `source` under `name` when it holds template syntax.
    pub fn add(&mut self, name: &str, source: &str) -> Result<Text, TemplateError> {
        if !(source.contains("{{") || source.contains("{%")) {
            return Ok(Text::Static(source.to_string()));
        }
        self.env
            .add_template_owned(name.to_string(), source.to_string())
            .map_err(TemplateError::from)?;
        Ok(Text::Template(name.to_string()))
    }

    /// The text as written in the scenario (the template source for templated text).
    pub fn source(&self, text: &Text) -> String {
        match text {
            Text::Static(s) => s.clone(),
            Text::Template(name) => self
                .env
                .get_template(name)
                .map(|t| t.source().to_string())
                .unwrap_or_default(),
        }
    }

    /// Variable names a template reads that are not functions.
    pub fn variables(&self, text: &Text) -> HashSet<String> {
        let Text::Template(name) = text else {
            return HashSet::new();
        };
        let Ok(t) = self.env.get_template(name) else {
            return HashSet::new();
        };
        t.undeclared_variables(false)
            .into_iter()
            .filter(|v| !FUNCTIONS.contains(&v.as_str()) && !BUILTIN_GLOBALS.contains(&v.as_str()))
            .collect()
    }

    pub fn render(&self, text: &Text, ctx: &Value) -> Result<String, TemplateError> {
        match text {
            Text::Static(s) => Ok(s.clone()),
            Text::Template(name) => Ok(self.env.get_template(name)?.render(ctx)?),
        }
    }
}

/// A template that cannot be compiled or rendered: the kind of failure and
/// what minijinja says of it, on one line (the source position is the
/// scenario file's business, added by whoever located the text).
#[derive(Debug, thiserror::Error)]
#[error("{kind}{}", .detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct TemplateError {
    pub kind: minijinja::ErrorKind,
    pub detail: Option<String>,
}

impl From<minijinja::Error> for TemplateError {
    fn from(e: minijinja::Error) -> Self {
        TemplateError {
            kind: e.kind(),
            detail: e.detail().map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ctx(pairs: &[(&str, Value)]) -> Value {
        let m: BTreeMap<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Value::from(m)
    }

    #[test]
    fn static_text_is_not_compiled() {
        let mut t = Templates::new();
        assert!(t.add("a", "/health").unwrap().is_static());
    }

    #[test]
    fn renders_variables_functions_and_defaults() {
        let mut t = Templates::new();
        let env: BTreeMap<String, String> = BTreeMap::new();
        let c = ctx(&[
            ("api_key", Value::from("k1")),
            ("env", Value::from(minijinja::value::Serde(&env))),
        ]);
        let x = t
            .add(
                "x",
                "{{ api_key }}-{{ env.ADMIN_API_KEY | default('test_admin') }}",
            )
            .unwrap();
        assert_eq!(t.render(&x, &c).unwrap(), "k1-test_admin");
        let r = t.add("r", "{{ random_string(7) }}").unwrap();
        assert_eq!(t.render(&r, &c).unwrap().len(), 7);
        let i = t.add("i", "{{ random_int(3, 3) }}").unwrap();
        assert_eq!(t.render(&i, &c).unwrap(), "3");
        let u = t.add("u", "{{ uuid() }}").unwrap();
        assert_eq!(t.render(&u, &c).unwrap().len(), 36);
    }

    #[test]
    fn missing_variable_is_an_error_and_is_reported_statically() {
        let mut t = Templates::new();
        let x = t
            .add("x", "/payments/{{ payment_id }}/confirm?u={{ uuid() }}")
            .unwrap();
        let vars = t.variables(&x);
        assert_eq!(
            vars.into_iter().collect::<Vec<_>>(),
            vec!["payment_id".to_string()]
        );
        assert!(t.render(&x, &ctx(&[])).is_err());
    }

    #[test]
    fn syntax_error_is_described() {
        let mut t = Templates::new();
        assert!(t
            .add("x", "{{ a ")
            .unwrap_err()
            .to_string()
            .contains("syntax"));
    }
}
