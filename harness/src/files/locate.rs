//! Maps a key path inside a scenario file to `file:line:column`, so that errors
//! found after deserialising (bad template, unknown executor...) still point at
//! the exact place in the file.

use std::path::{Path, PathBuf};

/// One step of a key path: a table key or an array index.
#[derive(Clone, Copy, Debug)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

pub struct Locator {
    file: PathBuf,
    source: String,
    doc: Option<toml_edit::Document<String>>,
}

impl Locator {
    pub fn new(file: &Path, source: &str) -> Self {
        Locator {
            file: file.to_path_buf(),
            source: source.to_string(),
            doc: toml_edit::Document::parse(source.to_string()).ok(),
        }
    }

    /// Deserialises the whole file, turning a TOML or serde error into
    /// `file:line:col: message`.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        toml::from_str(&self.source).map_err(|e| {
            let at = e
                .span()
                .map(|s| self.at_offset(s.start))
                .unwrap_or_else(|| self.file.display().to_string());
            anyhow::anyhow!("{at}: {}", e.message().trim())
        })
    }

    /// `file:line:col` of a byte offset.
    pub fn at_offset(&self, offset: usize) -> String {
        let (line, col) = line_col(&self.source, offset);
        format!("{}:{line}:{col}", self.file.display())
    }

    /// `file:line:col` of the value at `path`, or of the deepest parent found.
    pub fn at(&self, path: &[Seg]) -> String {
        let Some(doc) = &self.doc else {
            return self.file.display().to_string();
        };
        let mut item = doc.as_item();
        let mut best = None;
        for seg in path {
            let next = match seg {
                Seg::Key(k) => item.get(*k),
                Seg::Index(i) => item.get(*i),
            };
            match next {
                Some(n) => {
                    if let Some(span) = n.span() {
                        best = Some(span.start);
                    } else if let (Seg::Key(k), Some(t)) = (seg, item.as_table_like()) {
                        // Tables opened by a `[header]` carry their span on the key.
                        if let Some((key, _)) = t.get_key_value(k) {
                            if let Some(span) = key.span() {
                                best = Some(span.start);
                            }
                        }
                    }
                    item = n;
                }
                None => break,
            }
        }
        match best {
            Some(off) => self.at_offset(off),
            None => self.file.display().to_string(),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values() {
        let src = "a = 1\n[options]\nexecutor = \"x\"\n[[steps]]\npath = \"/\"\n[[steps]]\npath = \"/b\"\n";
        let loc = Locator::new(Path::new("f.toml"), src);
        assert_eq!(
            loc.at(&[Seg::Key("options"), Seg::Key("executor")]),
            "f.toml:3:12"
        );
        assert_eq!(
            loc.at(&[Seg::Key("steps"), Seg::Index(1), Seg::Key("path")]),
            "f.toml:7:8"
        );
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("x", 0), (1, 1));
    }
}
