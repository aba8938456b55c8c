//! Links printed after a run: Grafana's dashboard over the run's time range.

use std::time::Duration;

/// Whether something listens at the URL's host and port.
pub fn reachable(url: &str) -> bool {
    use std::net::{TcpStream, ToSocketAddrs};
    crate::metrics::server::split_url(url)
        .ok()
        .and_then(|(hp, _)| hp.to_socket_addrs().ok()?.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

/// Grafana's "Load test" dashboard over the run's time range, with the run selected.
pub fn dashboard_url(
    grafana: &str,
    run: &str,
    scenario: &str,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
) -> String {
    // A little margin so the first and last pushes are inside the range.
    let from = start.timestamp_millis() - 5_000;
    let to = end.timestamp_millis() + 10_000;
    format!(
        "{}/d/loadtest/load-test?orgId=1&from={from}&to={to}&var-run={run}&var-scenario={scenario}",
        grafana.trim_end_matches('/')
    )
}
