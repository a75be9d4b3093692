//! Small file helpers: every write kata makes is atomic (temp file + rename).

use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` atomically, creating parent dirs. Readers see the
/// old file or the new one, never a torn one; on error nothing changes.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, None)
}

pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if let Some(m) = mode {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(m))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Copies the tree at `from` to `to` (which must not exist yet): files with
/// their permission bits, symlinks as symlinks, directories recursively.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir(to)?;
    std::fs::set_permissions(to, std::fs::metadata(from)?.permissions())?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dest) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dest)?;
        } else if kind.is_dir() {
            copy_tree(&src, &dest)?;
        } else {
            std::fs::copy(&src, &dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_tree_keeps_modes_and_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::write(a.join("sub/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(a.join("sub/run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("sub/run.sh", a.join("link")).unwrap();
        copy_tree(&a, &d.path().join("b")).unwrap();
        let b = d.path().join("b");
        assert_eq!(
            std::fs::read_to_string(b.join("sub/run.sh")).unwrap(),
            "#!/bin/sh\n"
        );
        let mode = std::fs::metadata(b.join("sub/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            std::fs::read_link(b.join("link")).unwrap(),
            Path::new("sub/run.sh")
        );
        assert!(
            copy_tree(&a, &b).is_err(),
            "an existing destination is refused"
        );
    }
}
