//! The stack's service names, reachable from this process. A team's compose
//! file names its services (`db`, `router-server`) in URLs that only resolve
//! inside the stack's network; on a Linux Docker host the containers' bridge
//! addresses are reachable from the host, so once the stack is up every URL
//! whose host is a service name is rewritten to that service's address. The
//! team's files keep their names; only this process's connections change.

use std::collections::BTreeMap;
use std::sync::RwLock;

static ADDRESSES: RwLock<BTreeMap<String, String>> = RwLock::new(BTreeMap::new());

/// Records the address of each service of the stack (replacing earlier ones).
pub fn set(addresses: BTreeMap<String, String>) {
    *ADDRESSES.write().unwrap_or_else(|e| e.into_inner()) = addresses;
}

/// The recorded services and their addresses.
pub fn all() -> BTreeMap<String, String> {
    ADDRESSES.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The address of a service, when it is one of the stack's.
pub fn service(name: &str) -> Option<String> {
    ADDRESSES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
        .cloned()
}

/// `url` with its host replaced by the service's address when the host is a
/// service name of the stack; unchanged otherwise (or when it does not parse).
pub fn url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_string();
    };
    let Some(addr) = u.host_str().and_then(service) else {
        return url.to_string();
    };
    if u.set_host(Some(&addr)).is_err() {
        return url.to_string();
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_service_hosts_are_rewritten() {
        set(BTreeMap::from([(
            "db".to_string(),
            "172.30.0.2".to_string(),
        )]));
        assert_eq!(
            url("postgres://u:p@db:5432/app?sslmode=disable"),
            "postgres://u:p@172.30.0.2:5432/app?sslmode=disable"
        );
        assert_eq!(
            url("postgres://u:p@127.0.0.1:5433/app"),
            "postgres://u:p@127.0.0.1:5433/app"
        );
        assert_eq!(url("not a url"), "not a url");
        set(BTreeMap::new());
        assert_eq!(
            url("postgres://u:p@db:5432/app"),
            "postgres://u:p@db:5432/app"
        );
    }
}
