//! How dingtail is installed: the crate's `rust-version`, the systemd unit (checked and scored by
//! the real `systemd-analyze`), shell completions (checked by the real shells), the man page
//! (rendered by the real `man`), the self-contained binary and the container image.
//!
//! The last two need a release build for musl (minutes), so they are `#[ignore]`d in a plain
//! `cargo test` and run by `.ci/run` after `contrib/build-static.sh`:
//! `cargo test --test packaging -- --ignored`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_dingtail");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a tool the test needs; a missing tool fails the test (`.ci/run` installs them).
fn tool(program: &str, args: &[&str]) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .expect("run sh");
    assert!(
        found.status.success(),
        "`{program}` is not installed; .ci/run installs it (apt-get install …)"
    );
    let mut c = Command::new(program);
    c.args(args);
    c
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn dingtail(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run dingtail")
}

#[test]
fn rust_version_is_what_the_locked_dependencies_need() {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let declared = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("Cargo.toml sets rust-version")
        .trim_matches('"')
        .to_owned();
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
            "x86_64-unknown-linux-gnu",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let parse = |v: &str| -> (u32, u32) {
        let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap());
        (it.next().unwrap(), it.next().unwrap_or(0))
    };
    let (need, who) = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] != "dingtail")
        .filter_map(|p| Some((parse(p["rust_version"].as_str()?), p["name"].to_string())))
        .max()
        .unwrap();
    // The code's own floor: let-chains (`if a && let Some(b) = c`) are stable from 1.88.
    let need = need.max((1, 88));
    assert_eq!(
        parse(&declared),
        need,
        "rust-version {declared} but the newest requirement is {need:?} ({who})"
    );
}

/// The unit as installed, but with `ExecStart`'s binary at the one this test built (verify checks
/// that the command exists) and the man page that `Documentation=man:dingtail(1)` names.
fn unit_for_verify(dir: &Path, unit_text: &str) -> (PathBuf, PathBuf) {
    let unit = dir.join("dingtail.service");
    std::fs::write(&unit, unit_text.replace("/usr/local/bin/dingtail", BIN)).unwrap();
    let man1 = dir.join("man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    let page = dingtail(&["man"]);
    assert!(page.status.success());
    std::fs::write(man1.join("dingtail.1"), &page.stdout).unwrap();
    (unit, dir.join("man"))
}

fn verify(unit: &Path, manpath: &Path) -> Output {
    tool("systemd-analyze", &["verify"])
        .arg(unit)
        .env("MANPATH", manpath)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap()
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(repo().join("contrib/systemd/dingtail.service")).unwrap();
    for needed in [
        "DynamicUser=yes",
        "StateDirectory=dingtail",
        "ProtectSystem=strict",
        "ReadOnlyPaths=/var/log",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(shipped.contains(needed), "the unit lacks {needed}");
    }
    let (unit, manpath) = unit_for_verify(dir.path(), &shipped);
    let out = verify(&unit, &manpath);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // The check can fail: a misspelt setting and a missing binary are reported.
    let broken = shipped
        .replace("ProtectSystem=strict", "ProtectSystem=strcit")
        .replace("/usr/local/bin/dingtail run", "/nonexistent/dingtail run");
    let dir2 = tempfile::tempdir().unwrap();
    let (unit, manpath) = unit_for_verify(dir2.path(), &broken);
    let out = verify(&unit, &manpath);
    let err = text(&out.stderr);
    assert!(
        err.contains("strcit") && err.contains("/nonexistent/dingtail"),
        "{err}"
    );
}

#[test]
fn systemd_unit_security_exposure_is_low_and_as_the_readme_says() {
    let out = tool(
        "systemd-analyze",
        &["security", "--offline=yes", "--no-pager"],
    )
    .arg(repo().join("contrib/systemd/dingtail.service"))
    .env("SYSTEMD_COLORS", "0")
    .output()
    .unwrap();
    let report = text(&out.stdout);
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score in: {report}{}", text(&out.stderr)));
    // "→ Overall exposure level for dingtail.service: 1.5 OK 🙂"
    let score: f64 = line
        .split(": ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unreadable score: {line}"));
    assert!(score <= 2.0, "exposure {score}, more than 2.0:\n{report}");
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("exposure level {score:.1}")),
        "README should state the unit's score: exposure level {score:.1}"
    );
}

#[test]
fn completions_are_valid_scripts_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, check) in [
        ("bash", vec!["-n"]),
        ("zsh", vec!["-n"]),
        ("fish", vec!["--no-execute"]),
    ] {
        let out = dingtail(&["completions", shell]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in [
            "run",
            "check",
            "test",
            "send",
            "init",
            "dry-run",
            "from-beginning",
        ] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
        let path = dir.path().join(format!("dingtail.{shell}"));
        std::fs::write(&path, &out.stdout).unwrap();
        let out = tool(shell, &check).arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{shell} rejects its completion script: {}",
            text(&out.stderr)
        );
    }
    // bash: loading it registers a completion for dingtail.
    let path = dir.path().join("dingtail.bash");
    let out = tool("bash", &["-c"])
        .arg(format!("source {} && complete -p dingtail", path.display()))
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains("dingtail"),
        "{}",
        text(&out.stderr)
    );
    let bad = dingtail(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn man_page_renders_with_every_subcommand_and_option() {
    let dir = tempfile::tempdir().unwrap();
    let out = dingtail(&["man"]);
    assert!(out.status.success());
    let page = dir.path().join("dingtail.1");
    std::fs::write(&page, &out.stdout).unwrap();
    let out = tool("man", &["-l"])
        .arg(&page)
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // man emboldens by overstriking ("X\u{8}X") when not on a terminal; keep the last of each.
    let mut shown = String::new();
    let mut chars = text(&out.stdout)
        .chars()
        .collect::<Vec<_>>()
        .into_iter()
        .peekable();
    while let Some(c) = chars.next() {
        if chars.peek() == Some(&'\u{8}') {
            chars.next();
            continue;
        }
        shown.push(c);
    }
    for needed in [
        "NAME",
        "dingtail",
        "DINGTAIL RUN",
        "DINGTAIL TEST",
        "DINGTAIL INIT",
        "--dry-run",
        "--from-beginning",
        "--state-dir",
        "--replay",
        "--format",
    ] {
        assert!(shown.contains(needed), "man page lacks {needed}:\n{shown}");
    }
}

// ---- the self-contained binary and the image: run by .ci/run after contrib/build-static.sh ----

fn static_binary() -> PathBuf {
    let bin = repo().join("target/static/x86_64-unknown-linux-musl/release/dingtail");
    assert!(
        bin.exists(),
        "{} is missing: run contrib/build-static.sh first",
        bin.display()
    );
    bin
}

#[test]
#[ignore = "needs contrib/build-static.sh (a release build for musl); .ci/run runs it"]
fn static_binary_has_no_dynamic_dependencies_and_runs_the_sample() {
    let bin = static_binary();
    // glibc's ldd says "not a dynamic executable" for a static executable and "statically
    // linked" for a static position-independent one (what Rust builds for musl: ASLR kept).
    let out = tool("ldd", &[]).arg(&bin).output().unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        said.contains("not a dynamic executable") || said.trim() == "statically linked",
        "ldd: {said}"
    );
    // And the ELF itself: no interpreter, no needed library.
    let out = tool("readelf", &["-ldW"]).arg(&bin).output().unwrap();
    let elf = text(&out.stdout);
    assert!(
        !elf.contains("INTERP") && !elf.contains("(NEEDED)"),
        "{elf}"
    );

    let sample = std::fs::read(repo().join("examples/sample.log")).unwrap();
    let run = |bin: &Path| {
        let mut child = Command::new(bin)
            .args(["run", "--dry-run"])
            .env_remove("DINGTAIL_CONFIG")
            .env("DINGTAIL_HOST", "h")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&sample).unwrap();
        child.wait_with_output().unwrap()
    };
    let (ours, reference) = (run(&bin), run(Path::new(BIN)));
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    // Same summary as the debug build's: same lines read, same counts.
    assert_eq!(text(&ours.stderr), text(&reference.stderr));
    let counts = |o: &Output| -> Vec<(String, u64)> {
        text(&o.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["rules"].to_string(), v["count"].as_u64().unwrap())
            })
            .collect()
    };
    assert_eq!(counts(&ours), counts(&reference));
    assert!(!counts(&ours).is_empty());
}

/// podman as it works on these machines: runc (crun refuses the hybrid cgroup layout here) and
/// limits no higher than the sandbox allows.
fn podman(args: &[&str]) -> Command {
    let mut c = tool("podman", &["--runtime", "runc"]);
    c.args(args);
    c
}

fn podman_run(image: &str, extra: &[&str], args: &[&str], input: &[u8]) -> Output {
    let mut c = podman(&[
        "run",
        "--rm",
        "-i",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "-e",
        "DINGTAIL_HOST=h",
    ]);
    c.args(extra).arg(image).args(args);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
#[ignore = "needs contrib/build-static.sh and podman; .ci/run runs it"]
fn container_image_is_small_runs_as_non_root_and_keeps_state_on_its_volume() {
    static_binary();
    let image = "localhost/dingtail:packaging-test";
    let out = podman(&["build", "-q", "-t", image, "."])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "podman build: {}", text(&out.stderr));
    let out = podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.User}}|{{json .Config.Volumes}}|{{.Size}}",
        image,
    ])
    .output()
    .unwrap();
    let info = text(&out.stdout);
    let parts: Vec<&str> = info.trim().split('|').collect();
    assert_eq!(parts[0], "65532:65532", "{info}");
    assert!(parts[1].contains("/state"), "{info}");
    let size: u64 = parts[2].parse().unwrap();
    assert!(size < 32 << 20, "image is {size} bytes");

    // The sample through the image, as through the binary.
    let sample = std::fs::read(repo().join("examples/sample.log")).unwrap();
    let out = podman_run(image, &[], &["run", "--dry-run"], &sample);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("read 217 lines"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("\"count\":"),
        "{}",
        text(&out.stdout)
    );

    // A followed file's checkpoint goes to the /state volume, written by the unprivileged user:
    // a second --once run starts where the first stopped (without the checkpoint it would start
    // at the end), so it reads exactly the lines appended in between.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, &sample).unwrap();
    let volume = format!("dingtail-packaging-test-{}", std::process::id());
    let mount_log = format!("{}:/logs/app.log:ro", log.display());
    let mount_state = format!("{volume}:/state");
    let extra = ["-v", mount_log.as_str(), "-v", mount_state.as_str()];
    let first = podman_run(
        image,
        &extra,
        &["run", "--once", "--from-beginning", "/logs/app.log"],
        b"",
    );
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"ERROR one\nERROR two\nfine\n").unwrap();
    }
    let second = podman_run(image, &extra, &["run", "--once", "/logs/app.log"], b"");
    let _ = podman(&["volume", "rm", "-f", &volume]).output();
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stderr).contains("read 217 lines"),
        "{}",
        text(&first.stderr)
    );
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stderr).contains("read 3 lines"),
        "{}",
        text(&second.stderr)
    );
    assert!(
        text(&second.stdout).contains("ERROR two"),
        "{}",
        text(&second.stdout)
    );
}
