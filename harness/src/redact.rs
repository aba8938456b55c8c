//! Secrets kept out of what is printed and stored: the password part of a
//! URL's `user:password@`.

/// The URL with the password of `user:password@` replaced by `***`.
pub fn userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::userinfo as redact_userinfo;

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
