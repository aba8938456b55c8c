use std::path::Path;

use super::*;

fn parse_str(src: &str) -> Result<Scenario> {
    parse(Path::new("t.toml"), src)
}

#[test]
fn the_shipped_scenarios_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let names = list(&dir);
    assert!(names.contains(&"payment-create-and-confirm".to_string()));
    for n in names {
        load(&dir.join(format!("{n}.toml"))).unwrap_or_else(|e| panic!("{n}: {e}"));
    }
}

#[test]
fn static_json_bodies_are_encoded_once_and_templated_ones_kept() {
    let sc = parse_str(
        r#"
[options]
duration = "1s"
[[steps]]
name = "a"
method = "post"
path = "/a"
json = { amount = 1, nested = { list = [1, "x"] } }
[[steps]]
name = "b"
method = "POST"
path = "/b"
json = { id = "{{ uuid() }}", n = 2 }
"#,
    )
    .unwrap();
    match &sc.steps[0].body {
        Body::Static(b) => {
            let v: serde_json::Value = serde_json::from_slice(b).unwrap();
            assert_eq!(
                v,
                serde_json::json!({"amount": 1, "nested": {"list": [1, "x"]}})
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sc.steps[0].method, Method::POST);
    assert!(matches!(sc.steps[1].body, Body::Json(_)));
    assert_eq!(
        sc.steps[1].content_type.as_ref().unwrap(),
        "application/json"
    );
}

#[test]
fn variables_are_scoped() {
    // Teardown sees setup variables, not those extracted by steps.
    let err = parse_str(
        r#"
[options]
duration = "1s"
[[setup]]
path = "/s"
extract = { token = "$.t" }
[[steps]]
path = "/p/{{ token }}"
extract = { id = "$.id" }
[[teardown]]
path = "/t/{{ id }}"
"#,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("teardown[0]") && err.contains("unknown variable `id`"),
        "{err}"
    );
    // A step cannot read what a later step extracts.
    let err = parse_str(
        r#"
[options]
duration = "1s"
[[steps]]
path = "/p/{{ id }}"
[[steps]]
path = "/q"
extract = { id = "$.id" }
"#,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("t.toml:5:8") && err.contains("unknown variable `id`"),
        "{err}"
    );
}

#[test]
fn duplicate_names_and_missing_steps_are_errors() {
    let err = parse_str(
        "[options]\nduration = \"1s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\n[[steps]]\nname = \"a\"\npath = \"/b\"\n",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("two steps are named `a`") && err.contains("t.toml:7:8"),
        "{err}"
    );
    let err = parse_str("[options]\nduration = \"1s\"\n")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no [[steps]]"), "{err}");
}

#[test]
fn reserved_and_bad_names_are_rejected() {
    let err = parse_str(
        "[options]\nduration = \"1s\"\n[[steps]]\npath = \"/\"\nextract = { vu = \"$.a\" }\n",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("reserved"), "{err}");
    let err = parse_str("[options]\nduration = \"1s\"\n[[steps]]\npath = \"x\"\n")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("must start with /"), "{err}");
    let err =
        parse_str("[options]\nduration = \"1s\"\n[[steps]]\nmethod = \"G T\"\npath = \"/\"\n")
            .err()
            .unwrap()
            .to_string();
    assert!(err.contains("not an HTTP method"), "{err}");
}

#[test]
fn thresholds_keep_their_options() {
    let sc = parse_str(
        r#"
[options]
duration = "1s"
[[steps]]
name = "x"
path = "/"
[thresholds]
"http_req_duration{name:x}" = [{ threshold = "p(95) < 200", abort_on_fail = true, delay_abort_eval = "5s" }, "max < 900"]
"#,
    )
    .unwrap();
    assert_eq!(sc.thresholds.len(), 2);
    let t = &sc.thresholds[0];
    assert!(t.abort_on_fail);
    assert_eq!(t.delay_abort_eval, std::time::Duration::from_secs(5));
    assert_eq!(t.name.as_deref(), Some("x"));
    assert_eq!(t.to_string(), "http_req_duration{name:x}: p(95) < 200");
}
