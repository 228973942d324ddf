//! What makes a followed file the same file across renames and restarts: [`Identity`]
//! (device, inode, fingerprint of the first bytes), and the compressed files that are skipped.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

use serde::{Deserialize, Serialize};

/// Bytes at the head of a file that make up its fingerprint.
pub const FINGERPRINT_BYTES: usize = 256;

/// What makes a file the same file: device and inode, plus a hash of its first bytes, so that an
/// inode reused by a new file (after the old one was deleted) is not mistaken for the old file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// How many leading bytes `fingerprint` covers (fewer than [`FINGERPRINT_BYTES`] while the
    /// file is that short; 0 for an empty file, which then matches on dev and inode alone).
    pub fp_len: u32,
    /// FNV-1a of the first `fp_len` bytes.
    pub fp: u64,
}

impl Identity {
    /// The identity of an open file, reading its first bytes.
    pub fn of(file: &File) -> io::Result<Identity> {
        let meta = file.metadata()?;
        let mut head = [0u8; FINGERPRINT_BYTES];
        let n = read_head(file, &mut head)?;
        Ok(Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            fp_len: n as u32,
            fp: fnv1a(&head[..n]),
        })
    }

    /// Whether `file` is this file: same device and inode, and the same first `fp_len` bytes.
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        let meta = file.metadata()?;
        if (meta.dev(), meta.ino()) != (self.dev, self.ino) {
            return Ok(false);
        }
        self.head_matches(file)
    }

    /// Whether `file` (known to be this inode) still starts with the first `fp_len` bytes
    /// this fingerprint was taken of: one read of at most [`FINGERPRINT_BYTES`]. False once
    /// the file is shorter than that. A fingerprint of 0 bytes (the file was empty) matches
    /// anything.
    pub fn head_matches(&self, file: &File) -> io::Result<bool> {
        let mut head = [0u8; FINGERPRINT_BYTES];
        let want = self.fp_len as usize;
        let n = read_head(file, &mut head[..want])?;
        Ok(n == want && fnv1a(&head[..n]) == self.fp)
    }

    /// Whether `file` is a copy of this file that holds at least `offset` bytes: same device,
    /// another inode, the same full fingerprint. That is what `copytruncate` leaves behind
    /// (`app.log.1`), so lines held in the original before it was truncated are found there.
    /// Only a full fingerprint ([`FINGERPRINT_BYTES`]) is trusted for this.
    pub fn copied_to(&self, file: &File, offset: u64) -> io::Result<bool> {
        if self.fp_len as usize != FINGERPRINT_BYTES {
            return Ok(false);
        }
        let meta = file.metadata()?;
        if meta.dev() != self.dev || meta.ino() == self.ino || meta.len() < offset {
            return Ok(false);
        }
        let mut head = [0u8; FINGERPRINT_BYTES];
        let n = read_head(file, &mut head)?;
        Ok(n == FINGERPRINT_BYTES && fnv1a(&head) == self.fp)
    }

    /// Same device and inode (the content may have been truncated since).
    pub fn same_inode(&self, other: &Identity) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }

    /// Whether `later`, the identity of the same inode taken later, shows other content than
    /// this one: fingerprints over as many bytes that differ, or fewer bytes now than this
    /// fingerprint covers (the file was cut). A shorter fingerprint of this one cannot tell (the
    /// file may only have grown) and counts as the same content; so does a rewrite that starts
    /// with the same bytes.
    pub fn rewritten_as(&self, later: &Identity) -> bool {
        self.same_inode(later)
            && (self.fp_len > later.fp_len || (self.fp_len == later.fp_len && self.fp != later.fp))
    }
}

/// The compression format named by a file's first bytes, if any: such files (logrotate's
/// `app.log.2.gz`) are skipped, not read as text.
pub fn compressed(head: &[u8]) -> Option<&'static str> {
    const MAGICS: [(&[u8], &str); 4] = [
        (&[0x1f, 0x8b], "gzip"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz"),
        (b"BZh", "bzip2"),
    ];
    MAGICS
        .iter()
        .find(|(m, _)| head.starts_with(m))
        .map(|&(_, name)| name)
}

/// The compression format of an open file, by its magic bytes.
pub fn compressed_file(file: &File) -> io::Result<Option<&'static str>> {
    let mut head = [0u8; 6];
    let n = read_head(file, &mut head)?;
    Ok(compressed(&head[..n]))
}

/// Reads up to `buf.len()` bytes from offset 0 without moving the file position.
fn read_head(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A stable hash (the state file outlives the binary, so no std hasher with unstable keys).
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
