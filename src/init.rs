//! `dingtail init`: a commented starter config, made from the bundled rule packs that fit the
//! user's own logs.
//!
//! Each pack in `rules/` is for one log format. A pack is recognised in a sample by its
//! *signature*, a regex for the format's line shape (not for the errors: a quiet log is still an
//! nginx log), tried on the sample's first [`SAMPLE_LINES`] lines; a pack fits when at least one
//! line in [`FIT_ONE_IN`] has its shape (syslog files mix many programs, so sshd's lines may be a
//! minority). A sample that fits no pack gets the built-in rules (`rules/default.yaml`).
//!
//! The written config is the packs' own text, comments and all: their `rules:` items one after the
//! other (a rule whose name an earlier pack already used is left out, and a comment says so), the
//! `timestamp:` of the first recognised format, the samples as `inputs:`, and a commented
//! `robots:` section to fill in. The config is parsed before it is written, so `init` never
//! writes one that `check` would refuse.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use regex::Regex;

/// How many lines of a sample are looked at.
pub const SAMPLE_LINES: usize = 2000;
/// A pack fits when at least one sampled line in this many has its shape.
pub const FIT_ONE_IN: usize = 20;

/// A bundled rule pack and the shape of the lines it is written for.
#[derive(Debug)]
pub struct Pack {
    /// File name under `rules/`.
    pub file: &'static str,
    /// The pack's YAML, as shipped.
    pub text: &'static str,
    /// A line of the format this pack is for.
    pub signature: &'static str,
}

/// The packs `init` can recognise, most specific first. `rules/default.yaml` is the fallback and
/// `rules/example.yaml` a documentation example, so neither is here.
pub const PACKS: &[Pack] = &[
    Pack {
        file: "nginx-access.yaml",
        text: include_str!("../rules/nginx-access.yaml"),
        // 10.0.0.1 - - [29/Nov/2026:10:44:54 +0800] "GET / HTTP/1.1" 200 …
        signature: r#"^\S+ \S+ \S+ \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "[^"]*" \d{3} "#,
    },
    Pack {
        file: "nginx-error.yaml",
        text: include_str!("../rules/nginx-error.yaml"),
        // 2026/11/29 10:44:54 [error] 12#12: *1 …
        signature: r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} \[(?:debug|info|notice|warn|error|crit|alert|emerg)\] \d+#\d+: ",
    },
    Pack {
        file: "java-spring.yaml",
        text: include_str!("../rules/java-spring.yaml"),
        // 2026-11-29 10:44:54.123  INFO 1 --- [main] c.e.App : …  (Spring Boot's default layout)
        signature: r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}\.\d{3}\S*\s+(?:TRACE|DEBUG|INFO|WARN|ERROR|FATAL)\s+\d+\s+---\s",
    },
    Pack {
        file: "kubernetes.yaml",
        text: include_str!("../rules/kubernetes.yaml"),
        // {"time":"2026-11-29T10:44:54.123Z","level":"error",…}
        signature: r#"^\s*\{.*"time":\s*"\d{4}-\d{2}-\d{2}T"#,
    },
    Pack {
        file: "sshd.yaml",
        text: include_str!("../rules/sshd.yaml"),
        // Nov 29 10:44:54 host sshd[123]: …
        signature: r"^\w{3} [ \d]\d \d{2}:\d{2}:\d{2} \S+ sshd\[\d+\]: ",
    },
    Pack {
        file: "systemd-kernel.yaml",
        text: include_str!("../rules/systemd-kernel.yaml"),
        // Nov 29 10:44:54 host kernel: …  /  host systemd[1]: …
        signature: r"^\w{3} [ \d]\d \d{2}:\d{2}:\d{2} \S+ (?:kernel|systemd(?:-[\w-]+)?)(?:\[\d+\])?: ",
    },
];

/// The built-in rules: what a sample that fits no pack gets.
pub const FALLBACK: Pack = Pack {
    file: "default.yaml",
    text: crate::config::DEFAULT_RULES,
    signature: "",
};

/// How well one pack fits one sample.
#[derive(Debug, Clone, Copy)]
pub struct Fit {
    /// The pack.
    pub pack: &'static Pack,
    /// Sampled lines with the pack's shape.
    pub matched: usize,
    /// Lines sampled.
    pub lines: usize,
}

/// What `init` found in one sample file.
#[derive(Debug)]
pub struct Sample {
    /// The file, as given.
    pub path: PathBuf,
    /// Fitting packs, best first; empty: none fits (the built-in rules are used).
    pub fits: Vec<Fit>,
    /// Lines sampled.
    pub lines: usize,
}

/// Looks at the start of `input` and returns the packs that fit it, best first.
pub fn recognise(input: impl Read) -> std::io::Result<(Vec<Fit>, usize)> {
    let mut head = Vec::new();
    input.take(8 << 20).read_to_end(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(SAMPLE_LINES)
        .collect();
    let mut fits: Vec<Fit> = PACKS
        .iter()
        .map(|pack| {
            let re = Regex::new(pack.signature).expect("pack signatures are valid");
            Fit {
                pack,
                matched: lines.iter().filter(|l| re.is_match(l)).count(),
                lines: lines.len(),
            }
        })
        .filter(|f| f.matched > 0 && f.matched * FIT_ONE_IN >= f.lines)
        .collect();
    fits.sort_by_key(|f| std::cmp::Reverse(f.matched));
    Ok((fits, lines.len()))
}

/// Reads each sample and recognises its format.
pub fn survey(paths: &[PathBuf]) -> Result<Vec<Sample>, InitError> {
    paths
        .iter()
        .map(|path| {
            let file = std::fs::File::open(path).map_err(|source| InitError::Read {
                path: path.clone(),
                source,
            })?;
            let (fits, lines) = recognise(file).map_err(|source| InitError::Read {
                path: path.clone(),
                source,
            })?;
            Ok(Sample {
                path: path.clone(),
                fits,
                lines,
            })
        })
        .collect()
}

/// The packs to include, in order of first use, the fallback last when some sample fits none
/// (or when there are no samples at all).
pub fn chosen_packs(samples: &[Sample]) -> Vec<&'static Pack> {
    let mut packs: Vec<&'static Pack> = Vec::new();
    for s in samples {
        for f in &s.fits {
            if !packs.iter().any(|p| p.file == f.pack.file) {
                packs.push(f.pack);
            }
        }
    }
    if samples.is_empty() || samples.iter().any(|s| s.fits.is_empty()) {
        packs.push(&FALLBACK);
    }
    packs
}

/// The config text. `timestamp_from` chooses whose `timestamp:` section is written (the first
/// pack's when `None`); `init` writes one config but replays each sample with its own format's.
pub fn starter(samples: &[Sample], inputs: &[PathBuf], timestamp_from: Option<&Pack>) -> String {
    let packs = chosen_packs(samples);
    let mut y = String::new();
    let described: Vec<String> = samples
        .iter()
        .map(|s| {
            format!(
                "#   {}: {}",
                s.path.display(),
                if s.fits.is_empty() {
                    format!("no known format in {} lines: the built-in rules", s.lines)
                } else {
                    s.fits
                        .iter()
                        .map(|f| format!("{} ({} of {} lines)", f.pack.file, f.matched, f.lines))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )
        })
        .collect();
    y.push_str(
        "# dingtail.yaml: written by `dingtail init`. Every line below is yours to change.\n\
         #\n\
         #   dingtail check                      is it valid? (every problem, with its line)\n\
         #   dingtail test --replay FILE         the messages these rules would send for FILE\n\
         #   dingtail run --dry-run --once       read the inputs once, print instead of sending\n\
         #   dingtail run                        follow the inputs and send\n",
    );
    if !described.is_empty() {
        y.push_str("#\n# Rule packs chosen from the samples:\n");
        for d in &described {
            y.push_str(d);
            y.push('\n');
        }
    }
    y.push_str(
        "\n\
         # The group robot: in the DingTalk group, Settings → Bots → Add → Custom (自定义), with\n\
         # security setting \"Additional signature\" (加签). Put its access_token and SEC… secret in\n\
         # the environment (never in this file), uncomment, then check it: dingtail send \"hello\".\n\
         # Until a robot is set up, `run` prints the messages instead of sending them.\n\
         # robots:\n\
         #   ops:\n\
         #     webhook: \"https://oapi.dingtalk.com/robot/send?access_token=${DINGTALK_TOKEN}\"\n\
         #     secret: \"${DINGTALK_SECRET}\"\n\
         #     keyword: \"告警\"        # only if the robot's security setting is a keyword\n\
         \n\
         defaults:\n  \
           window: 30s       # hits of a rule within 30 s of its first go out as one message\n  \
           max_lines: 5      # lines quoted in one message; the ×N count is always all of them\n",
    );
    let ts_pack = timestamp_from.or_else(|| packs.first().copied());
    if let Some(ts) = ts_pack.and_then(|p| section(p.text, "timestamp")) {
        let _ = write!(
            y,
            "\n# Where a line's time is, for `test --replay` (from rules/{}).\n{ts}",
            ts_pack.map_or("", |p| p.file)
        );
    }
    if !inputs.is_empty() {
        y.push_str(
            "\n# Files to follow like `tail -F` (globs too, e.g. /var/log/app/*.log).\ninputs:\n",
        );
        for p in inputs {
            let _ = writeln!(y, "  - path: {}", yaml_str(&p.display().to_string()));
        }
    }
    y.push_str("\nrules:\n");
    let mut names: Vec<String> = Vec::new();
    for pack in packs {
        let _ = writeln!(y, "  # ---- from rules/{} ----", pack.file);
        for item in rule_items(pack.text) {
            let name = item_name(&item);
            if let Some(name) = name.as_ref().filter(|n| names.contains(n)) {
                let _ = writeln!(y, "  # ({name}: already above, left out)");
                continue;
            }
            names.extend(name);
            y.push_str(&item);
        }
    }
    y
}

/// A top-level section of a pack (`timestamp:` and its indented lines), with its comments.
fn section(text: &str, key: &str) -> Option<String> {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if inside {
            if line.starts_with(' ') {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            break;
        }
        if line.starts_with(&format!("{key}:")) {
            inside = true;
            out.push_str(line);
            out.push('\n');
        }
    }
    inside.then_some(out)
}

/// The items of a pack's `rules:` list, each with the comment lines just above it.
fn rule_items(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut comments = String::new();
    let mut inside = false;
    for line in text.lines() {
        if !inside {
            inside = line.starts_with("rules:");
            continue;
        }
        if line.starts_with("  - ") {
            if !current.is_empty() {
                items.push(std::mem::take(&mut current));
            }
            current.push_str(&std::mem::take(&mut comments));
            current.push_str(line);
            current.push('\n');
        } else if line.trim_start().starts_with('#') || line.trim().is_empty() {
            comments.push_str(line);
            comments.push('\n');
        } else {
            current.push_str(&std::mem::take(&mut comments));
            current.push_str(line);
            current.push('\n');
        }
    }
    current.push_str(&comments);
    if !current.trim().is_empty() {
        items.push(current);
    }
    items
}

/// The `name:` of one rule item.
fn item_name(item: &str) -> Option<String> {
    item.lines()
        .find_map(|l| {
            l.trim_start()
                .trim_start_matches("- ")
                .strip_prefix("name:")
        })
        .map(|n| {
            let n = n.split(" #").next().unwrap_or(n).trim();
            n.trim_matches(|c| c == '"' || c == '\'').to_owned()
        })
}

/// A YAML scalar in double quotes.
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// The sample as the config's `inputs:` should name it: absolute, so the config works from any
/// working directory.
pub fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// Why `init` stopped.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A sample could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The sample.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str) -> Sample {
        let (fits, lines) = recognise(text.as_bytes()).unwrap();
        Sample {
            path: "s.log".into(),
            fits,
            lines,
        }
    }

    #[test]
    fn recognises_each_pack_by_its_line_shape() {
        let cases = [
            (
                "nginx-access.yaml",
                "10.0.0.1 - - [29/Nov/2026:10:44:54 +0800] \"GET / HTTP/1.1\" 200 12 \"-\" \"curl\"\n",
            ),
            (
                "nginx-error.yaml",
                "2026/11/29 10:44:54 [error] 12#12: *1 connect() failed\n",
            ),
            (
                "java-spring.yaml",
                "2026-11-29 10:44:54.123  INFO 1 --- [main] c.e.App : Started\n",
            ),
            (
                "kubernetes.yaml",
                "{\"time\":\"2026-11-29T10:44:54.123Z\",\"level\":\"info\",\"msg\":\"ok\"}\n",
            ),
            (
                "sshd.yaml",
                "Nov 29 10:44:54 web sshd[123]: Accepted publickey for a\n",
            ),
            (
                "systemd-kernel.yaml",
                "Nov 29 10:44:54 web kernel: Out of memory: Killed process 1\n",
            ),
        ];
        for (file, line) in cases {
            let s = sample(&line.repeat(3));
            let got: Vec<&str> = s.fits.iter().map(|f| f.pack.file).collect();
            assert_eq!(got, [file], "{line}");
        }
        assert!(sample("hello\nworld\n").fits.is_empty());
    }

    #[test]
    fn a_minority_of_a_mixed_syslog_still_fits_but_a_stray_line_does_not() {
        let ssh = "Nov 29 10:44:54 web sshd[1]: x\n";
        let cron = "Nov 29 10:44:54 web CRON[2]: y\n";
        let mixed = format!("{}{}", ssh.repeat(2), cron.repeat(18));
        assert_eq!(sample(&mixed).fits.len(), 1);
        let stray = format!("{}{}", ssh, cron.repeat(40));
        assert!(sample(&stray).fits.is_empty());
    }

    #[test]
    fn every_combination_of_packs_is_a_valid_config() {
        // Each pack alone, all together, and each with the fallback (names that collide, like
        // oom-killed in systemd-kernel and default, are written once).
        let mut sets: Vec<Vec<&'static Pack>> = PACKS.iter().map(|p| vec![p]).collect();
        sets.push(PACKS.iter().collect());
        for set in sets {
            let mut samples: Vec<Sample> = set
                .iter()
                .map(|p| Sample {
                    path: format!("{}.log", p.file).into(),
                    fits: vec![Fit {
                        pack: p,
                        matched: 1,
                        lines: 1,
                    }],
                    lines: 1,
                })
                .collect();
            for with_fallback in [false, true] {
                if with_fallback {
                    samples.push(Sample {
                        path: "other.log".into(),
                        fits: vec![],
                        lines: 1,
                    });
                }
                let text = starter(&samples, &["/var/log/x.log".into()], None);
                let c = crate::config::parse_str(&text, "init.yaml", &|_| None)
                    .unwrap_or_else(|e| panic!("{e}\n{text}"));
                let expected: usize = chosen_packs(&samples)
                    .iter()
                    .flat_map(|p| rule_items(p.text))
                    .filter_map(|i| item_name(&i))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                assert_eq!(c.rules.len(), expected, "{text}");
            }
        }
    }

    #[test]
    fn no_samples_gives_the_builtin_rules() {
        let text = starter(&[], &[], None);
        let c = crate::config::parse_str(&text, "init.yaml", &|_| None).unwrap();
        assert_eq!(c.rules.len(), crate::config::Config::builtin().rules.len());
    }
}
