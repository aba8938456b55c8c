//! Build contexts: a tar of a folder that honours `.dockerignore`.

use std::path::Path;

use anyhow::{Context, Result};
use globset::GlobMatcher;

/// `.dockerignore` rules in order; the last matching rule wins (`!` re-includes).
pub struct Ignore {
    rules: Vec<(GlobMatcher, bool)>,
}

impl Ignore {
    /// Whether some `!` rule may re-include a path below an excluded folder.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(_, neg)| *neg)
    }
}

impl Ignore {
    pub fn parse(text: &str) -> Result<Ignore> {
        let mut rules = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (neg, pat) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let pat = pat
                .trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/');
            let glob = globset::GlobBuilder::new(pat)
                .literal_separator(true)
                .build()
                .with_context(|| format!(".dockerignore: bad pattern `{l}`"))?;
            rules.push((glob.compile_matcher(), neg));
        }
        Ok(Ignore { rules })
    }

    /// Whether a path (relative, `/`-separated) is left out. A rule matching a
    /// parent folder covers everything below it.
    pub fn excluded(&self, rel: &str) -> bool {
        let mut out = false;
        for (m, neg) in &self.rules {
            let mut hit = m.is_match(rel);
            let mut prefix = rel;
            while !hit {
                match prefix.rfind('/') {
                    Some(i) => {
                        prefix = &prefix[..i];
                        hit = m.is_match(prefix);
                    }
                    None => break,
                }
            }
            if hit {
                out = !neg;
            }
        }
        out
    }
}

/// Tars `dir` (files and folders, following no symlinks) minus ignored paths
/// into an unnamed temporary file, rewound: the Engine reads it from there in
/// chunks, so a context of any size costs no memory. `extra` adds in-memory
/// files, e.g. a generated Dockerfile.
pub fn tar_context(dir: &Path, extra: &[(&str, &[u8])]) -> Result<std::fs::File> {
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(t) => Ignore::parse(&t)?,
        Err(_) => Ignore::parse("")?,
    };
    let mut builder = tar::Builder::new(scratch_file()?);
    builder.follow_symlinks(false);
    // The Engine cannot unpack GNU sparse entries.
    builder.sparse(false);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .with_context(|| format!("cannot read build context {}", d.display()))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel = path
                .strip_prefix(dir)
                .expect("below the context")
                .to_string_lossy()
                .replace('\\', "/");
            // The Dockerfile and .dockerignore always go, as docker does.
            let always = rel == "Dockerfile" || rel == ".dockerignore";
            let excluded = !always && ignore.excluded(&rel);
            let ft = e.file_type()?;
            if ft.is_dir() {
                // An excluded folder is still walked when an exception may bring back something inside.
                if excluded && !ignore.has_exceptions() {
                    continue;
                }
                if !excluded {
                    builder.append_dir(&rel, &path)?;
                }
                stack.push(path);
            } else if excluded {
                continue;
            } else if ft.is_file() || ft.is_symlink() {
                builder
                    .append_path_with_name(&path, &rel)
                    .with_context(|| {
                        format!("cannot add {} to the build context", path.display())
                    })?;
            }
        }
    }
    for (name, data) in extra {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, name, *data)?;
    }
    rewound(builder.into_inner()?)
}

/// An unnamed file in the temporary folder: gone when closed, whatever happens.
pub fn scratch_file() -> Result<std::fs::File> {
    tempfile::tempfile().context("cannot create a temporary file for a build context")
}

/// The finished archive, read from its start.
pub fn rewound(mut f: std::fs::File) -> Result<std::fs::File> {
    use std::io::Seek;
    f.rewind().context("cannot rewind a build context")?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_rules() {
        let ig = Ignore::parse("# build output\ntarget\n*.log\n!keep.log\ndocs/**/*.md\n").unwrap();
        assert!(ig.excluded("target"));
        assert!(ig.excluded("target/release/demo"));
        assert!(ig.excluded("a.log"));
        assert!(!ig.excluded("keep.log"));
        assert!(
            !ig.excluded("sub/a.log"),
            "patterns are anchored at the context root"
        );
        assert!(ig.excluded("docs/x/y.md"));
        assert!(!ig.excluded("src/main.rs"));
    }

    #[test]
    fn tar_leaves_out_ignored_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".dockerignore"), "secret\n").unwrap();
        std::fs::write(d.path().join("secret"), "x").unwrap();
        std::fs::create_dir(d.path().join("src")).unwrap();
        std::fs::write(d.path().join("src/a.rs"), "fn a() {}").unwrap();
        let bytes = tar_context(d.path(), &[("Dockerfile", b"FROM scratch\n")]).unwrap();
        let mut ar = tar::Archive::new(bytes);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"src/a.rs".to_string()), "{names:?}");
        assert!(names.contains(&"Dockerfile".to_string()));
        assert!(!names.iter().any(|n| n == "secret"), "{names:?}");
    }

    #[test]
    fn exceptions_reach_inside_excluded_folders() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(".dockerignore"),
            "*\n!target/release/app\n!migrations\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.path().join("target/release/deps")).unwrap();
        std::fs::write(d.path().join("target/release/app"), "bin").unwrap();
        std::fs::write(d.path().join("target/release/deps/x"), "no").unwrap();
        std::fs::create_dir(d.path().join("migrations")).unwrap();
        std::fs::write(d.path().join("migrations/1_a.sql"), "select 1;").unwrap();
        std::fs::write(d.path().join("README"), "no").unwrap();
        let bytes = tar_context(d.path(), &[]).unwrap();
        let mut ar = tar::Archive::new(bytes);
        let mut files: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.header().entry_type().is_file())
            .map(|e| e.path().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            vec![".dockerignore", "migrations/1_a.sql", "target/release/app"]
        );
    }
}
