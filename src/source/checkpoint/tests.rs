//! The checkpoint ledger, file and state directory, tested together.

use std::fs::File;

use super::identity::fnv1a;
use super::*;
use crate::source::{FileId, Mark};

fn ident() -> Identity {
    Identity {
        dev: 1,
        ino: 2,
        fp_len: 0,
        fp: fnv1a(b""),
    }
}

fn opened(k: &mut Keeper, file: FileId, path: &str, offset: u64) {
    k.apply(PositionUpdate::Opened {
        file,
        path: path.into(),
        identity: ident(),
        offset,
    });
}

fn progress(k: &mut Keeper, file: FileId, start: u64, end: u64, holds: u32) {
    k.apply(PositionUpdate::Progress {
        mark: Mark { file, start },
        end,
        holds,
    });
}

#[test]
fn the_offset_waits_for_the_earliest_unsettled_hold() {
    let mut k = Keeper::new(Vec::new());
    opened(&mut k, 1, "a", 100);
    assert_eq!(k.safe_offset("a"), Some(100));
    progress(&mut k, 1, 100, 200, 0);
    assert_eq!(k.safe_offset("a"), Some(200));
    progress(&mut k, 1, 200, 300, 2);
    progress(&mut k, 1, 300, 400, 1);
    assert_eq!(k.safe_offset("a"), Some(200));
    k.settled(&[Mark {
        file: 1,
        start: 200,
    }]);
    assert_eq!(k.safe_offset("a"), Some(200), "one of two alerts left");
    k.settled(&[Mark {
        file: 1,
        start: 200,
    }]);
    assert_eq!(k.safe_offset("a"), Some(300));
    k.settled(&[Mark {
        file: 1,
        start: 300,
    }]);
    assert_eq!(k.safe_offset("a"), Some(400));
}

#[test]
fn a_release_seen_before_its_registration_does_not_hold_or_leak() {
    let mut k = Keeper::new(Vec::new());
    opened(&mut k, 1, "a", 0);
    k.settled(&[Mark { file: 1, start: 0 }]);
    progress(&mut k, 1, 0, 50, 1);
    assert_eq!(k.safe_offset("a"), Some(50));
    assert!(k.files[&1].holds.is_empty());
}

#[test]
fn a_replaced_file_is_forgotten_once_settled() {
    let mut k = Keeper::new(Vec::new());
    opened(&mut k, 1, "a", 0);
    progress(&mut k, 1, 0, 10, 1);
    opened(&mut k, 2, "a", 0);
    k.apply(PositionUpdate::Closed { file: 1, end: 10 });
    assert_eq!(k.safe_offset("a"), Some(0));
    assert!(k.files.contains_key(&1));
    k.settled(&[Mark { file: 1, start: 0 }]);
    assert!(!k.files.contains_key(&1));
    assert_eq!(k.entries().len(), 1);
}

#[test]
fn the_state_file_round_trips_and_identity_sees_content() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    assert!(store.load().unwrap().files.is_empty());
    let log = dir.path().join("x.log");
    std::fs::write(&log, b"hello\n").unwrap();
    let id = Identity::of(&File::open(&log).unwrap()).unwrap();
    assert_eq!(id.fp_len, 6);
    assert!(id.matches(&File::open(&log).unwrap()).unwrap());
    let entry = Entry {
        path: "x".into(),
        identity: id,
        offset: 6,
        from: 0,
    };
    store.save(vec![entry.clone()]).unwrap();
    assert_eq!(store.load().unwrap().files, [entry]);
    // same inode, other content: not the same file
    std::fs::write(&log, b"HELLO\n").unwrap();
    assert!(!id.matches(&File::open(&log).unwrap()).unwrap());
}

fn entry(path: &str, offset: u64) -> Entry {
    Entry {
        path: path.into(),
        identity: Identity {
            ino: offset,
            ..ident()
        },
        offset,
        from: 0,
    }
}

#[test]
fn a_corrupt_state_file_is_kept_aside_and_the_last_good_copy_used() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_owned()).unwrap().lock().unwrap();
    store.save(vec![entry("a", 1)]).unwrap();
    store.save(vec![entry("a", 2)]).unwrap();
    std::fs::write(store.path(), b"{not json").unwrap();
    let saved = store.load().expect("a corrupt file is not an error");
    assert_eq!(saved.files, [entry("a", 1)], "the last good copy");
    assert_eq!(
        std::fs::read(dir.path().join(CORRUPT_FILE)).unwrap(),
        b"{not json",
        "kept aside for a look"
    );
    // and again on the next start: no crash loop
    assert_eq!(store.load().unwrap().files, [entry("a", 1)]);
    // a crash between the two renames of a save leaves only the last good copy
    std::fs::remove_file(dir.path().join(CORRUPT_FILE)).unwrap();
    assert_eq!(store.load().unwrap().files, [entry("a", 1)]);
}

#[test]
fn a_second_instance_cannot_take_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path().to_owned()).unwrap().lock().unwrap();
    let second = Store::open(dir.path().to_owned()).unwrap().lock();
    assert!(
        matches!(second, Err(StoreError::Locked { .. })),
        "{second:?}"
    );
    drop(first);
    Store::open(dir.path().to_owned())
        .unwrap()
        .lock()
        .expect("free again");
}

#[test]
fn an_unwritable_state_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    // root writes anywhere; the probe still has to work for other users
    if File::create(ro.join("x")).is_ok() {
        std::fs::remove_file(ro.join("x")).unwrap();
        // a read-only bind would need privileges a test does not have: check the probe's
        // error path with a path under a regular file instead
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let err = Store::open(file.join("state")).unwrap_err();
        assert!(err.to_string().contains("state"), "{err}");
        return;
    }
    let err = Store::open(ro.clone()).unwrap().lock().unwrap_err();
    assert!(matches!(err, StoreError::Unwritable { .. }));
    assert!(err.to_string().contains(&ro.display().to_string()), "{err}");
}

#[test]
fn a_rotated_file_stays_in_the_state_until_settled_and_closed() {
    let mut k = Keeper::new(Vec::new());
    opened(&mut k, 1, "a", 0);
    progress(&mut k, 1, 0, 10, 1);
    opened(&mut k, 2, "a", 0);
    k.apply(PositionUpdate::Closed { file: 1, end: 10 });
    assert_eq!(
        k.entries().len(),
        1,
        "same identity in this test: one entry"
    );
    assert_eq!(
        k.entries()[0].offset,
        0,
        "the held offset of the rotated file wins"
    );
    k.settled(&[Mark { file: 1, start: 0 }]);
    assert_eq!(k.tracked(), 1, "forgotten once settled");
    // closed before its last chunk was counted: kept until it is
    opened(&mut k, 3, "b", 0);
    k.apply(PositionUpdate::Closed { file: 3, end: 20 });
    assert_eq!(k.tracked(), 2);
    progress(&mut k, 3, 0, 20, 0);
    assert_eq!(k.tracked(), 1);
}

#[test]
fn an_entry_for_content_truncated_away_outlives_the_new_content_until_the_first_look_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "new content ".repeat(30)).unwrap();
    let now = Identity::of(&File::open(&log).unwrap()).unwrap();
    assert_eq!(now.fp_len as usize, FINGERPRINT_BYTES);
    let path = log.to_string_lossy().into_owned();
    // Loaded: `app.log` as it was before a copytruncate (same inode, other first bytes), held
    // at 100; its copy `app.log.1` taken up at 400, where the original had been read to; and
    // a file not taken up (unreadable for a while) that is still at its path.
    let before = Entry {
        path: path.clone(),
        identity: Identity {
            fp: now.fp ^ 1,
            ..now
        },
        offset: 100,
        from: 0,
    };
    // (an inode no file of this test has)
    let copy_id = Identity {
        ino: u64::MAX,
        ..before.identity
    };
    let copy = Entry {
        path: format!("{path}.1"),
        identity: copy_id,
        offset: 400,
        from: 400,
    };
    let other_path = dir.path().join("other.log");
    std::fs::write(&other_path, "other").unwrap();
    let other = Entry {
        path: other_path.to_string_lossy().into_owned(),
        identity: Identity::of(&File::open(&other_path).unwrap()).unwrap(),
        offset: 5,
        from: 0,
    };
    let mut k = Keeper::new(vec![before.clone(), copy, other.clone()]);
    // The restart takes up the new content of `app.log` first: the state written now must
    // still say where the copy's lines are held.
    k.apply(PositionUpdate::Opened {
        file: 1,
        path: path.as_str().into(),
        identity: now,
        offset: 0,
    });
    assert!(k.entries().contains(&before), "{:#?}", k.entries());
    // The copy taken up replaces its own entry.
    k.apply(PositionUpdate::Opened {
        file: 2,
        path: format!("{path}.1").into(),
        identity: copy_id,
        offset: 100,
    });
    let copies: Vec<Entry> = k
        .entries()
        .into_iter()
        .filter(|e| e.identity == copy_id)
        .collect();
    assert_eq!(copies.len(), 1, "{copies:#?}");
    assert_eq!(copies[0].offset, 100);
    // Once the first look is done, the truncated content's entry goes (its file starts with
    // other bytes now); a file still there as it was keeps its entry.
    k.apply(PositionUpdate::Started);
    assert!(!k.entries().contains(&before), "{:#?}", k.entries());
    assert!(k.entries().contains(&other), "{:#?}", k.entries());
}
