//! `loadtest dashboard`: writes the Grafana dashboard and its provisioning
//! files, carried in the binary, so a team's own Grafana (or one beside the
//! harness's Prometheus) shows the runs without a checkout of this repository.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::exit::{Classify, Failure};

#[derive(clap::Args, Debug)]
pub struct DashboardCmd {
    /// Folder to write into: dashboards/loadtest.json, provisioning/dashboards/loadtest.yml,
    /// provisioning/datasources/prometheus.yml (mount these at /var/lib/grafana/dashboards and
    /// /etc/grafana/provisioning)
    #[arg(long, default_value = "grafana")]
    pub out: PathBuf,
    /// The Prometheus Grafana reads, as Grafana reaches it (the harness's own beside a team's
    /// stack is `http://prometheus:9090` on the stack's network)
    #[arg(long, default_value = "http://prometheus:9090")]
    pub prometheus_url: String,
    /// Print the dashboard JSON to standard output instead (for Grafana's "Import dashboard")
    #[arg(long, conflicts_with = "out")]
    pub stdout: bool,
}

/// The files, as in this repository's `grafana/` folder.
const DASHBOARD: &str = include_str!("../../../grafana/dashboards/loadtest.json");
const PROVIDER: &str = include_str!("../../../grafana/provisioning/dashboards/loadtest.yml");
const DATASOURCE: &str = include_str!("../../../grafana/provisioning/datasources/prometheus.yml");
/// The URL the repository's datasource file names; replaced by `--prometheus-url`.
const REPO_PROMETHEUS: &str = "url: http://prometheus:9090";

fn files(prometheus_url: &str) -> [(&'static str, String); 3] {
    [
        ("dashboards/loadtest.json", DASHBOARD.to_string()),
        ("provisioning/dashboards/loadtest.yml", PROVIDER.to_string()),
        (
            "provisioning/datasources/prometheus.yml",
            DATASOURCE.replacen(REPO_PROMETHEUS, &format!("url: {prometheus_url}"), 1),
        ),
    ]
}

impl DashboardCmd {
    pub fn execute(&self) -> Result<u8, Failure> {
        if self.stdout {
            crate::outln!("{}", DASHBOARD.trim_end());
            return Ok(0);
        }
        if self.prometheus_url.contains(char::is_whitespace) || self.prometheus_url.is_empty() {
            return Err(Failure::Usage(anyhow!(
                "--prometheus-url `{}` is not a URL",
                self.prometheus_url
            )));
        }
        let files = files(&self.prometheus_url);
        // Check every path first, so a refusal leaves nothing half-written.
        for (rel, _) in &files {
            let path = self.out.join(rel);
            if path.exists() {
                return Err(Failure::Usage(anyhow!(
                    "{} already exists; `loadtest dashboard` never overwrites a file: choose another --out",
                    path.display()
                )));
            }
        }
        for (rel, text) in &files {
            let path = self.out.join(rel);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow!("cannot create {}: {e}", dir.display()))
                    .runtime()?;
            }
            crate::files::write_atomic(&path, text.as_bytes()).runtime()?;
            crate::outln!("wrote {}", path.display());
        }
        crate::outln!(
            "mount {} at /var/lib/grafana/dashboards and {} at /etc/grafana/provisioning; the datasource reads {}",
            show(&self.out.join("dashboards")),
            show(&self.out.join("provisioning")),
            self.prometheus_url
        );
        Ok(0)
    }
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_datasource_names_the_given_prometheus() {
        let f = files("http://10.0.0.5:9090");
        assert!(f[2].1.contains("url: http://10.0.0.5:9090\n"), "{}", f[2].1);
        assert!(!f[2].1.contains("prometheus:9090"));
        // The dashboard is the repository's, and valid JSON naming the datasource uid.
        let v: serde_json::Value = serde_json::from_str(&f[0].1).unwrap();
        assert_eq!(v["title"], "Load test");
        assert!(f[0].1.contains("loadtest-prometheus"));
        assert!(f[2].1.contains("uid: loadtest-prometheus"));
    }
}
