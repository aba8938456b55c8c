//! The timeline of a long run, kept on disk while the run goes on: one
//! second costs about a kilobyte in memory, so a soak of hours would grow
//! without bound if the windows stayed in the heap until the result is written.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

use crate::metrics::window::Window;

pub struct Spool {
    out: BufWriter<File>,
    /// The newest window stays in memory: the end of the run shortens it.
    last: Option<Window>,
    written: usize,
}

impl Spool {
    /// An unnamed temporary file: the system removes it when the run ends,
    /// however it ends.
    pub fn new() -> std::io::Result<Spool> {
        Ok(Spool {
            out: BufWriter::new(tempfile::tempfile()?),
            last: None,
            written: 0,
        })
    }

    pub fn push(&mut self, w: Window) -> std::io::Result<()> {
        if let Some(prev) = self.last.replace(w) {
            serde_json::to_writer(&mut self.out, &prev)?;
            self.out.write_all(b"\n")?;
            self.written += 1;
        }
        Ok(())
    }

    pub fn last_mut(&mut self) -> Option<&mut Window> {
        self.last.as_mut()
    }

    /// All windows, in order.
    pub fn finish(self) -> std::io::Result<Vec<Window>> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        let mut all = Vec::with_capacity(self.written + 1);
        for line in BufReader::new(file).lines() {
            all.push(serde_json::from_str(&line?)?);
        }
        all.extend(self.last);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(t: u64) -> Window {
        Window {
            trial: 0,
            t,
            span_s: 1.0,
            requests: t * 10,
            failures: 0,
            iterations: t,
            dropped_iterations: 0,
            p50: Some(1.5),
            p95: None,
            p99: None,
            p90: None,
            mean: None,
            max: None,
            checks_passes: 0,
            checks_fails: 0,
            vus: 1,
            by_request: Default::default(),
        }
    }

    #[test]
    fn windows_come_back_in_order_with_the_last_one_changed() {
        let mut s = Spool::new().unwrap();
        assert!(s.last_mut().is_none());
        for t in 0..1000 {
            s.push(window(t)).unwrap();
        }
        s.last_mut().unwrap().span_s = 0.25;
        let all = s.finish().unwrap();
        assert_eq!(all.len(), 1000);
        assert!(all.iter().enumerate().all(|(i, w)| w.t == i as u64));
        assert_eq!(all[10], window(10));
        assert_eq!(all[999].span_s, 0.25);
        assert!(Spool::new().unwrap().finish().unwrap().is_empty());
    }
}
