//! Advisory file locks (std `File::lock`): per-app deploys, host-wide Caddy writes.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

/// Held while alive; the OS releases it on drop or process exit.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes an exclusive lock on `path`, creating it and its parent. When another
/// process holds it, calls `on_wait` once and then blocks until it is free.
pub fn exclusive(path: &Path, on_wait: impl FnOnce()) -> io::Result<Lock> {
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
            on_wait();
            file.lock()?;
        }
        Err(TryLockError::Error(e)) => return Err(e),
    }
    Ok(Lock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_taker_waits_until_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let first = exclusive(&p, || panic!("first should not wait")).unwrap();
        let p2 = p.clone();
        let waited = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let w2 = waited.clone();
        let t = std::thread::spawn(move || {
            let _l =
                exclusive(&p2, || w2.store(true, std::sync::atomic::Ordering::SeqCst)).unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(first);
        t.join().unwrap();
        assert!(waited.load(std::sync::atomic::Ordering::SeqCst));
    }
}
