//! Advisory file locks (std `File::lock`): per-app deploys, host-wide Caddy writes.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

/// Held while alive; the OS releases it on drop or process exit.
#[derive(Debug)]
pub struct Lock {
    file: File,
}

impl Lock {
    /// Says what the holder does, for whoever waits: the lock file's
    /// content. A courtesy only, so a failed write is ignored.
    pub fn describe(&self, what: &str) {
        use std::os::unix::fs::FileExt;
        let _ = self.file.set_len(0);
        let _ = self.file.write_all_at(what.as_bytes(), 0);
    }
}

/// Takes an exclusive lock on `path`, creating it and its parent. When another
/// process holds it, calls `on_wait` once with what the holder said it does
/// ([`Lock::describe`], empty when it said nothing) and then blocks until it
/// is free.
pub fn exclusive(path: &Path, on_wait: impl FnOnce(&str)) -> io::Result<Lock> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(path).unwrap_or_default();
            on_wait(holder.trim());
            file.lock()?;
        }
        Err(TryLockError::Error(e)) => return Err(e),
    }
    // what the previous holder said is no longer true
    let _ = file.set_len(0);
    Ok(Lock { file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_taker_waits_until_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let first = exclusive(&p, |_| panic!("first should not wait")).unwrap();
        first.describe("stopping old containers");
        let p2 = p.clone();
        let waited = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let w2 = waited.clone();
        let t = std::thread::spawn(move || {
            let _l = exclusive(&p2, |holder| {
                assert_eq!(holder, "stopping old containers");
                w2.store(true, std::sync::atomic::Ordering::SeqCst)
            })
            .unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(first);
        t.join().unwrap();
        assert!(waited.load(std::sync::atomic::Ordering::SeqCst));
        // a new holder that says nothing leaves nothing said
        let third = exclusive(&p, |_| panic!("free")).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
        drop(third);
    }
}
