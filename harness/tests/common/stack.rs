//! The demo stack on its own project and free ports, for tests that need it whole.

use std::process::Command;

use super::{bin, repo_root};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn demo_bin() -> String {
    let root = repo_root();
    let bin = root.join("target/debug/demo");
    if !bin.is_file() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "demo"])
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(st.success(), "building the demo failed");
    }
    "target/debug/demo".to_string()
}

pub struct Stack {
    pub project: String,
    pub db_port: u16,
    pub app_port: u16,
    pub push_port: u16,
    pub prom_port: u16,
    /// The https demo of the `tls` profile.
    pub tls_port: u16,
}

impl Stack {
    /// A project named after the test and this process, on free ports.
    pub fn new(name: &str) -> Stack {
        Stack {
            project: format!("ltt-{name}-{}", std::process::id()),
            db_port: free_port(),
            app_port: free_port(),
            push_port: free_port(),
            prom_port: free_port(),
            tls_port: free_port(),
        }
    }

    /// `loadtest` in the repository root with the stack's ports, and extra environment.
    pub fn cmd_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(repo_root())
            .env("LOADTEST_DB_PORT", self.db_port.to_string())
            .env("LOADTEST_APP_PORT", self.app_port.to_string())
            .env("LOADTEST_PUSHGATEWAY_PORT", self.push_port.to_string())
            .env("LOADTEST_PROMETHEUS_PORT", self.prom_port.to_string())
            .env("LOADTEST_APP_TLS_PORT", self.tls_port.to_string())
            .env("LOADTEST_DEMO_BIN", demo_bin())
            .env("LOADTEST_PROJECT", &self.project);
        c
    }

    pub fn cmd(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.app_port)
    }

    pub fn db_url(&self) -> String {
        format!("postgres://demo:demo@127.0.0.1:{}/demo", self.db_port)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The app image built for this test goes too: test runs must not pile images up.
        let _ = self.cmd(&["down", "--rmi"]);
    }
}
