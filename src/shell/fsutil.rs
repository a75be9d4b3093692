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

/// Reads `rel` inside the tree at `root` without following a symlink at any
/// step: each directory on the way and the file itself must be what they
/// claim, so a checkout cannot point kata at a file outside it (a symlinked
/// `kata-compose.yaml` → `/etc/shadow`). `NotFound` when it does not exist.
pub fn read_in_tree(root: &Path, rel: &Path) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let at = walk_in_tree(root, rel)?;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&at)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", rel.display()),
        ));
    }
    let mut out = vec![];
    io::Read::read_to_end(&mut f, &mut out)?;
    Ok(out)
}

/// Checks that `rel` inside `root` is reached without a symlink at any step
/// (a missing tail is fine: nothing to follow there). Returns its path.
pub fn walk_in_tree(root: &Path, rel: &Path) -> io::Result<std::path::PathBuf> {
    let mut at = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        let std::path::Component::Normal(name) = part else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: only plain names inside the tree", rel.display()),
            ));
        };
        at.push(name);
        let meta = std::fs::symlink_metadata(&at)?;
        let last = i + 1 == parts.len();
        if meta.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is a symlink; kata does not follow it", rel.display()),
            ));
        }
        if !last && !meta.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "not a directory"));
        }
    }
    Ok(at)
}

/// Creates `dir` (and parents) and makes it readable by its owner only.
/// A directory another user owns is left as it is.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::create_dir_all(dir)?;
    let meta = std::fs::metadata(dir)?;
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    if meta.uid() == me && meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
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
        } else if kind.is_file() {
            std::fs::copy(&src, &dest)?;
        } // a FIFO or a device (a build step can make one) is not copied
    }
    Ok(())
}

/// Makes KATA_ROOT's top-level directories readable by the kata user only:
/// they hold repos, code, data and config. Containers run as the kata user
/// and reach their own directories through their mounts, so they still work.
pub fn secure_root(paths: &crate::paths::Paths) -> io::Result<()> {
    for d in crate::paths::SKELETON {
        private_dir(&paths.root().join(d))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_in_tree_refuses_symlinks_anywhere_on_the_way() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("src");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f.yaml"), "ok").unwrap();
        std::fs::write(d.path().join("secret"), "s3cret").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), root.join("kata-compose.yaml"))
            .unwrap();
        std::os::unix::fs::symlink(d.path(), root.join("out")).unwrap();
        assert_eq!(read_in_tree(&root, Path::new("sub/f.yaml")).unwrap(), b"ok");
        let e = read_in_tree(&root, Path::new("kata-compose.yaml")).unwrap_err();
        assert!(e.to_string().contains("is a symlink"), "{e}");
        assert!(read_in_tree(&root, Path::new("out/secret")).is_err());
        assert!(read_in_tree(&root, Path::new("../secret")).is_err());
        assert_eq!(
            read_in_tree(&root, Path::new("missing"))
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        assert!(
            read_in_tree(&root, Path::new("sub")).is_err(),
            "a directory"
        );
    }

    #[test]
    fn private_dir_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
