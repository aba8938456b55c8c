//! The two sides' sources: the base from a git ref (checked out in a
//! worktree kept under `target/`, so its build caches survive between
//! comparisons), the head from the working tree as it is.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow!("cannot run git: {e} (is git installed?)"))?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The repository's top folder.
pub fn toplevel(dir: &Path) -> Result<PathBuf> {
    git(dir, &["rev-parse", "--show-toplevel"])
        .map(PathBuf::from)
        .map_err(|e| anyhow!("`loadtest ab` needs a git checkout: {e}"))
}

/// Where the base's worktree lives: under `target/` when the repository
/// ignores that folder (a Rust checkout, whose build caches then survive),
/// else inside the git folder, so a team's tree gains no untracked files.
pub fn base_worktree(repo: &Path) -> PathBuf {
    let ignored = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["check-ignore", "-q", "target/ab/base"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ignored {
        return repo.join("target").join("ab").join("base");
    }
    let git_dir = git(repo, &["rev-parse", "--git-common-dir"])
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(".git"));
    let git_dir = if git_dir.is_absolute() {
        git_dir
    } else {
        repo.join(git_dir)
    };
    git_dir.join("loadtest").join("ab-base")
}

/// The commit a ref names, or an error naming the ref.
pub fn resolve(repo: &Path, reference: &str) -> Result<String> {
    if reference.starts_with('-') || reference.is_empty() {
        bail!("`{reference}` is not a git ref");
    }
    git(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{reference}^{{commit}}"),
        ],
    )
    .map_err(|_| anyhow!("git ref `{reference}` does not name a commit in {}: check the name, or fetch it (`git fetch origin {reference}`)", repo.display()))
}

/// Whether git has this commit.
pub fn has_commit(repo: &Path, sha: &str) -> bool {
    resolve(repo, sha).is_ok()
}

/// HEAD's commit and whether the working tree differs from it.
pub fn head(repo: &Path) -> Result<(String, bool)> {
    let sha = git(repo, &["rev-parse", "HEAD"])?;
    let dirty = !git(repo, &["status", "--porcelain", "--untracked-files=no"])?.is_empty();
    Ok((sha, dirty))
}

/// The merge-base of HEAD with the default branch (origin's HEAD, else
/// main, else master).
pub fn merge_base_default(repo: &Path) -> Result<(String, String)> {
    for candidate in [
        "origin/HEAD",
        "origin/main",
        "main",
        "origin/master",
        "master",
    ] {
        if resolve(repo, candidate).is_ok() {
            let base = git(repo, &["merge-base", "HEAD", candidate])?;
            return Ok((candidate.to_string(), base));
        }
    }
    bail!("no default branch found (origin/HEAD, main, master): give the base with --base REF")
}

/// A worktree at `dir` holding exactly `sha` (made once, then moved).
pub fn worktree(repo: &Path, dir: &Path, sha: &str) -> Result<()> {
    let usable = dir.join(".git").exists() && git(dir, &["rev-parse", "HEAD"]).is_ok();
    if usable {
        git(dir, &["checkout", "--quiet", "--detach", "--force", sha])?;
        // Build outputs stay (that is the point of keeping it); stray source files go.
        git(dir, &["clean", "-fdq", "-e", "target/"])?;
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the stale worktree {}", dir.display()))?;
    }
    let _ = git(repo, &["worktree", "prune"]);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    git(
        repo,
        &[
            "worktree",
            "add",
            "--quiet",
            "--detach",
            "--force",
            &dir.display().to_string(),
            sha,
        ],
    )?;
    Ok(())
}

/// Gives a new worktree's Rust build the checkout's compiled release
/// dependencies (a copy of `target/release`: its deps, build-script outputs
/// and fingerprints), so the base's first build compiles only the
/// workspace's own crates. A copy, not hard links: rustc rewrites some
/// outputs in place, which would reach the checkout's files through a link.
/// Returns whether it copied.
pub fn seed_build_cache(repo: &Path, worktree: &Path) -> Result<bool> {
    let from = repo.join("target").join("release");
    let to = worktree.join("target").join("release");
    if !from.join(".fingerprint").is_dir() || worktree.join("target").exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(&to).with_context(|| format!("cannot create {}", to.display()))?;
    for part in ["deps", "build", ".fingerprint"] {
        let src = from.join(part);
        if !src.is_dir() {
            continue;
        }
        let status = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(&src)
            .arg(&to)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| anyhow!("cannot run cp: {e}"))?;
        if !status.success() {
            // Half a cache is worse than none: cargo would trust what is there.
            let _ = std::fs::remove_dir_all(worktree.join("target"));
            bail!(
                "copying {} to {} failed ({status})",
                src.display(),
                to.display()
            );
        }
    }
    Ok(true)
}

/// Runs the build command in `dir` (through `sh -c`), its output into `log`.
/// On failure the error holds the last lines.
pub fn build(dir: &Path, command: &str, log: &Path) -> Result<()> {
    if command.trim().is_empty() {
        return Ok(());
    }
    let file = std::fs::File::create(log)
        .with_context(|| format!("cannot create the build log {}", log.display()))?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .map_err(|e| anyhow!("cannot run `{command}`: {e}"))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        bail!(
            "`{command}` failed in {} ({status}):\n{tail}\n(full log: {})",
            dir.display(),
            log.display()
        );
    }
    Ok(())
}
