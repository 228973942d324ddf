//! Replacing a file of the state directory so that a crash leaves the old or the new content,
//! never a mix, and the previous content stays as the last good copy.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Replaces `dir/name` with `bytes`: write `name.tmp`, fsync it, move the current file to
/// `dir/prev` (the last good copy), rename the temporary over `name`, fsync the directory.
///
/// At every instant either `name` or `prev` holds a complete file: a crash between the two
/// renames leaves only `prev`, which is why loaders fall back to it.
pub fn replace(dir: &Path, name: &str, prev: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    match std::fs::rename(dir.join(name), dir.join(prev)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_content_becomes_the_last_good_copy() {
        let dir = tempfile::tempdir().unwrap();
        replace(dir.path(), "f", "f.prev", b"one").unwrap();
        assert!(!dir.path().join("f.prev").exists());
        replace(dir.path(), "f", "f.prev", b"two").unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"two");
        assert_eq!(std::fs::read(dir.path().join("f.prev")).unwrap(), b"one");
        assert!(!dir.path().join("f.tmp").exists());
    }
}
