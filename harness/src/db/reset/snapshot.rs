//! `snapshot`: a copy taken before a run and renamed back after it, for an
//! environment the harness did not create; only on a database marked disposable.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use sqlx::Connection;

use super::pg::{admin, copy_live, exists, mark, swap_in};
use super::{DbSettings, Strategy};
use crate::db::{admin_url, connect, ident, redact};

/// A copy of the database taken before a run, put back after it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub database: String,
    pub copy: String,
    pub admin_url: String,
}

impl Snapshot {
    /// The commands that put the snapshot back by hand.
    pub fn manual_restore(&self) -> String {
        format!(
            "psql \"{}\" -c 'DROP DATABASE IF EXISTS {} WITH (FORCE)' -c 'ALTER DATABASE {} RENAME TO {}'",
            redact(&self.admin_url),
            ident(&self.database),
            ident(&self.copy),
            ident(&self.database)
        )
    }
}

pub async fn take_snapshot(s: &DbSettings) -> Result<(Snapshot, Duration)> {
    s.require_disposable(Strategy::Snapshot)?;
    let t0 = Instant::now();
    let snap = Snapshot {
        database: s.database()?,
        copy: s.snapshot_name()?,
        admin_url: admin_url(&s.url)?,
    };
    let mut a = admin(s).await?;
    if exists(&mut a, &snap.copy).await? {
        bail!(
            "a snapshot `{}` of `{}` from an earlier run is still there (its restore failed or was cut off): \
             put it back with `loadtest db restore`, or drop it if the current state is the one to keep",
            snap.copy,
            snap.database
        );
    }
    copy_live(&mut a, &snap.database, &snap.copy).await?;
    mark(
        &mut a,
        &snap.copy,
        &format!("snapshot of {}", snap.database),
    )
    .await?;
    a.close().await.ok();
    Ok((snap, t0.elapsed()))
}

/// Puts the snapshot back. On failure the snapshot is kept and the error says
/// how to restore by hand.
pub async fn restore_snapshot(snap: &Snapshot) -> Result<Duration> {
    let t0 = Instant::now();
    let r = async {
        let mut a = connect(&snap.admin_url).await?;
        if !exists(&mut a, &snap.copy).await? {
            bail!("the snapshot `{}` is gone", snap.copy);
        }
        swap_in(&mut a, &snap.database, &snap.copy).await?;
        a.close().await.ok();
        Ok(())
    }
    .await;
    r.map_err(|e| {
        e.context(format!(
            "restoring `{}` from its snapshot failed; the snapshot `{}` is kept. Restore by hand with:\n  {}",
            snap.database,
            snap.copy,
            snap.manual_restore()
        ))
    })?;
    Ok(t0.elapsed())
}

/// The snapshot left by an earlier run, if any (for `loadtest db restore`).
pub async fn pending_snapshot(s: &DbSettings) -> Result<Option<Snapshot>> {
    let snap = Snapshot {
        database: s.database()?,
        copy: s.snapshot_name()?,
        admin_url: admin_url(&s.url)?,
    };
    let mut a = admin(s).await?;
    let found = exists(&mut a, &snap.copy).await?;
    a.close().await.ok();
    Ok(found.then_some(snap))
}
