//! The shell of pinning (see [`crate::access::pin`]): after the build step
//! ran the app's code, copies the files the plan pins out of the release's
//! code into its record, never through a symlink.

use crate::access::pin::Copy;
use std::path::Path;

/// Makes the planned copies from the release's code, never through a
/// symlink (none of its path, nor anything but files, directories and
/// symlinks inside a copied tree). A missing source is left missing:
/// Docker and compose then behave as they would have with the original.
pub fn copy_in(src: &Path, copies: &[Copy]) -> std::io::Result<()> {
    for c in copies {
        let from = match crate::fsutil::walk_in_tree(src, &c.rel) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if let Some(parent) = c.to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let meta = std::fs::symlink_metadata(&from)?;
        if meta.is_dir() {
            crate::fsutil::copy_tree(&from, &c.to)?;
        } else if meta.is_file() {
            std::fs::copy(&from, &c.to)?;
        }
    }
    Ok(())
}

/// Makes a release's planned copies (see [`crate::plan`]) into `files`
/// (`releases/<n>/files`), which starts over empty.
pub fn pin_release(files: &Path, src: &Path, copies: &[Copy]) -> Result<(), String> {
    if files.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(files).map_err(|e| format!("{}: {e}", files.display()))?;
    }
    if !copies.is_empty() {
        std::fs::create_dir(files).map_err(|e| format!("{}: {e}", files.display()))?;
    }
    copy_in(src, copies).map_err(|e| format!("copying the release's mounted files: {e}"))
}

/// A writable relative directory kept, before this release, inside the
/// app's data directory (`data/<app>/<rel>`) moves to `to`, its place under
/// [`crate::access::pin::mounts_dir`], once: the data stays the app's. Never through a symlink.
pub fn adopt_old_mount(old_data: &Path, rel: &str, to: &Path) -> std::io::Result<bool> {
    if to.symlink_metadata().is_ok() {
        return Ok(false);
    }
    let Ok(old) = crate::fsutil::walk_in_tree(old_data, Path::new(rel)) else {
        return Ok(false);
    };
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(&old, to)?;
    // a container could have swapped it between the walk and the rename
    if std::fs::symlink_metadata(to)?.file_type().is_symlink() {
        std::fs::remove_file(to)?;
        return Ok(false);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_never_follow_symlinks_and_old_mounts_move_once() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("conf/sub")).unwrap();
        std::fs::write(src.join("conf/sub/a"), "a").unwrap();
        std::os::unix::fs::symlink("/etc", src.join("conf/etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link.env")).unwrap();
        std::fs::write(src.join("x.env"), "X=1\n").unwrap();
        let files = d.path().join("files");
        let c = |rel: &str, i: usize| Copy {
            rel: rel.into(),
            to: files.join(format!("{i}")),
        };
        copy_in(&src, &[c("conf", 0), c("x.env", 1), c("missing", 2)]).unwrap();
        assert_eq!(std::fs::read_to_string(files.join("0/sub/a")).unwrap(), "a");
        assert_eq!(
            std::fs::read_link(files.join("0/etc")).unwrap(),
            Path::new("/etc")
        );
        assert_eq!(std::fs::read_to_string(files.join("1")).unwrap(), "X=1\n");
        assert!(!files.join("2").exists());
        let e = copy_in(&src, &[c("link.env", 3)]).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert!(files.join("3").symlink_metadata().is_err());

        let data = d.path().join("data/shop");
        std::fs::create_dir_all(data.join("uploads")).unwrap();
        std::fs::write(data.join("uploads/u"), "kept").unwrap();
        std::os::unix::fs::symlink("/", data.join("evil")).unwrap();
        let to = d.path().join("data/.mounts/shop/uploads");
        assert!(adopt_old_mount(&data, "uploads", &to).unwrap());
        assert_eq!(std::fs::read_to_string(to.join("u")).unwrap(), "kept");
        assert!(!adopt_old_mount(&data, "uploads", &to).unwrap(), "once");
        let to = d.path().join("data/.mounts/shop/evil");
        assert!(!adopt_old_mount(&data, "evil", &to).unwrap());
        assert!(to.symlink_metadata().is_err(), "a symlink is not adopted");
    }
}
