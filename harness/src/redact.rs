//! Secrets kept out of what is printed and stored: the password part of a
//! URL's `user:password@`.

/// The URL with the password of `user:password@`, and a `password=` query
/// parameter (libpq's other way to give it), replaced by `***`.
pub fn userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let masked = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    };
    match masked.split_once('?') {
        Some((base, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
        None => masked,
    }
}

#[cfg(test)]
mod tests {
    use super::userinfo as redact_userinfo;

    #[test]
    fn database_urls_are_redacted() {
        assert_eq!(
            redact_userinfo("postgres://demo:secret@db:5432/demo"),
            "postgres://demo:***@db:5432/demo"
        );
        assert_eq!(redact_userinfo("postgres://db/demo"), "postgres://db/demo");
        assert_eq!(
            redact_userinfo("postgres://db/demo?sslmode=disable&password=hunter2"),
            "postgres://db/demo?sslmode=disable&password=***"
        );
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact_userinfo("http://admin:hunter2@127.0.0.1:8080/api?x=1"),
            "http://admin:***@127.0.0.1:8080/api?x=1"
        );
        assert_eq!(
            redact_userinfo("http://127.0.0.1:8080/a@b"),
            "http://127.0.0.1:8080/a@b"
        );
    }
}
