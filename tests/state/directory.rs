//! The state directory through the real binary: locked by one instance, checked for writing at
//! start, a corrupt checkpoint file kept aside instead of a crash loop.

use std::fs;

use crate::support::env::{TestEnv, wait_until};

#[test]
fn a_state_directory_that_cannot_be_used_is_exit_2_naming_it() {
    let env = TestEnv::new();
    let log = env.dir().join("app.log");
    fs::write(&log, "ERROR x\n").unwrap();
    // a path under a regular file can never be a directory, whoever runs the test
    let blocked = env.dir().join("file");
    fs::write(&blocked, "").unwrap();
    let state = blocked.join("state");
    let out = env.run(
        &[
            "run",
            "--state-dir",
            state.to_str().unwrap(),
            log.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(state.to_str().unwrap()),
        "{}",
        out.stderr
    );
}

#[test]
fn a_second_instance_on_the_same_state_directory_is_exit_2() {
    let env = TestEnv::new();
    let log = env.dir().join("app.log");
    fs::write(&log, "").unwrap();
    let state = env.dir().join("state");
    let args = [
        "run",
        "--state-dir",
        state.to_str().unwrap(),
        log.to_str().unwrap(),
    ];
    let first = env.start(&args);
    // the first one has the directory once it has written its checkpoints
    wait_until("the first instance to start", || {
        state.join("checkpoints.json").exists()
    });
    let second = env.run(&args, b"");
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(
        second.stderr.contains("in use by another dingtail"),
        "{}",
        second.stderr
    );
    first.signal(libc::SIGTERM);
    assert_eq!(first.wait().code, 0);
}

#[test]
fn a_corrupt_checkpoint_file_is_kept_aside_and_the_run_goes_on() {
    let env = TestEnv::new();
    let log = env.dir().join("app.log");
    fs::write(&log, "ERROR old\n").unwrap();
    let state = env.dir().join("state");
    fs::create_dir(&state).unwrap();
    fs::write(state.join("checkpoints.json"), "{not json").unwrap();
    let args = [
        "run",
        "--dry-run",
        "--once",
        "--state-dir",
        state.to_str().unwrap(),
        log.to_str().unwrap(),
    ];
    for _ in 0..2 {
        let out = env.run(&args, b"");
        assert_eq!(out.code, 0, "never a crash loop: {}", out.stderr);
    }
    assert!(state.join("checkpoints.json.corrupt").exists());
}
