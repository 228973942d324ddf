//! The `dingtail` binary: parses the command line, calls the library, maps errors to exit codes
//! (0 all delivered, 1 something not delivered or a runtime failure, 2 usage or config error).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use dingtail::app::{self, RunOptions};
use dingtail::cli::{Cli, Command, ConfigArg, SendArgs};
use dingtail::config::{self, Config};
use dingtail::dingtalk::{Client, message};
use dingtail::redact::redact_patterns;
use dingtail::tester;

const EXIT_UNDELIVERED: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Check(c) => check(&c),
        Command::Run(args) => {
            let config = match load(&args.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let opts = RunOptions {
                dry_run: args.dry_run,
                tee: args.tee,
                shutdown_timeout: args.shutdown_timeout,
                host: hostname(),
                paths: args.paths,
                from_beginning: args.from_beginning,
                once: args.once,
                state_dir: args.state_dir,
                listen: args.listen,
                config_path: config_path(&args.config),
                watch_config: args.watch_config,
            };
            let result = runtime().block_on(app::run(config, opts));
            match result {
                Ok(report) => {
                    // The summary and the failures pass the redaction step like every log line.
                    eprintln!("{}", redact_patterns(&report.summary()));
                    if let Some(status) = &report.budget {
                        eprintln!("dingtail: {status}");
                    }
                    for line in report.failures() {
                        eprintln!("{}", redact_patterns(&line));
                    }
                    if report.has_failures() {
                        ExitCode::from(EXIT_UNDELIVERED)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!("dingtail: {}", redact_patterns(&format!("{e:#}")));
                    ExitCode::from(EXIT_UNDELIVERED)
                }
            }
        }
        Command::Test(args) => {
            let config = match load(&args.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let input: Box<dyn std::io::Read> = match &args.path {
                Some(p) => match std::fs::File::open(p) {
                    Ok(f) => Box::new(f),
                    Err(e) => {
                        eprintln!("dingtail: cannot open {}: {e}", p.display());
                        return ExitCode::from(EXIT_USAGE);
                    }
                },
                None => Box::new(std::io::stdin().lock()),
            };
            let result = if args.replay {
                dingtail::replay::replay(&config, input, &mut out, &hostname(), args.line_interval)
                    .map(|_| ())
            } else {
                tester::run(&config, input, &mut out).map(|_| ())
            };
            let _ = out.flush();
            match result {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("dingtail: {e}");
                    ExitCode::from(EXIT_UNDELIVERED)
                }
            }
        }
        Command::Send(args) => send(&args),
        Command::Silence(cmd) => silence(cmd),
    }
}

/// `dingtail silence add|list|expire`: over the running instance's listener, else on the state
/// directory's file.
fn silence(cmd: dingtail::cli::SilenceCommand) -> ExitCode {
    use dingtail::cli::SilenceCommand;
    use dingtail::silence::{Action, Place};
    let (target, action) = match cmd {
        SilenceCommand::Add(a) => (
            a.target,
            Action::Add(dingtail::silence::NewSilence {
                rule: a.rule,
                group: a.group,
                seconds: a.duration.as_secs().max(1),
                comment: a.comment,
            }),
        ),
        SilenceCommand::List(t) => (t, Action::List),
        SilenceCommand::Expire { target, id } => (target, Action::Expire(id)),
    };
    let listen = match target.listen {
        Some(a) => Some(a),
        None => match config_path(&target.config).map(|p| config::load(&p)) {
            Some(Ok(c)) => c.listen,
            Some(Err(e)) => {
                eprintln!("{e}");
                return ExitCode::from(EXIT_USAGE);
            }
            None => None,
        },
    };
    let place = Place {
        listen,
        state_dir: target.state_dir,
    };
    match runtime().block_on(dingtail::silence::act(&place, action)) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dingtail: {e}");
            ExitCode::from(EXIT_UNDELIVERED)
        }
    }
}

/// `-c`, then `$DINGTAIL_CONFIG`, then `./dingtail.yaml`; `None`: the built-in rules.
fn config_path(arg: &ConfigArg) -> Option<PathBuf> {
    arg.config
        .clone()
        .or_else(|| {
            std::env::var_os("DINGTAIL_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| {
            Path::new("dingtail.yaml")
                .exists()
                .then(|| PathBuf::from("dingtail.yaml"))
        })
}

fn load(arg: &ConfigArg) -> Result<Config, ExitCode> {
    match config_path(arg) {
        None => Ok(Config::builtin()),
        Some(path) => {
            let config = config::load(&path).map_err(|e| {
                eprintln!("{e}");
                ExitCode::from(EXIT_USAGE)
            })?;
            for warning in &config.warnings {
                eprintln!("warning: {warning}");
            }
            Ok(config)
        }
    }
}

fn check(arg: &ConfigArg) -> ExitCode {
    let config = match load(arg) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let robots: Vec<&str> = config.robots.iter().map(|r| r.name.as_str()).collect();
    println!(
        "{}: ok: {} robot(s){}, {} rule(s)",
        config.origin,
        robots.len(),
        if robots.is_empty() {
            String::new()
        } else {
            format!(" ({})", robots.join(", "))
        },
        config.rules.len()
    );
    // The budget as `run` would see it now, from the ledger in the state directory.
    let file = dingtail::source::checkpoint::state_dir(None)
        .ok()
        .map(|d| dingtail::budget::ledger_file::LedgerFile::at(&d));
    let path = file.as_ref().map(|f| f.path().display().to_string());
    match dingtail::budget::SharedBudget::open(&config, file) {
        Ok(budget) => {
            println!("{}", budget.status(std::time::SystemTime::now()));
            println!(
                "(a natural month in Asia/Shanghai; ledger {})",
                path.as_deref().unwrap_or("none: no state directory")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dingtail: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn send(args: &SendArgs) -> ExitCode {
    let config = match load(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let id = match &args.robot {
        Some(name) => config.robot_id(name),
        None => config.default_robot,
    };
    let Some(robot) = id.map(|id| config.robots[id].clone()) else {
        let known: Vec<&str> = config.robots.iter().map(|r| r.name.as_str()).collect();
        eprintln!(
            "dingtail: {}; robots in {}: {}",
            match &args.robot {
                Some(n) => format!("no robot named `{n}`"),
                None => "which robot? name one with --robot".to_owned(),
            },
            config.origin,
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let body = message::plain_text(
        &args.text,
        robot.keyword.as_deref(),
        &uuid::Uuid::new_v4().to_string(),
    );
    // A message sent by hand spends the month's quota too: counted before it goes.
    let robot_id = config.robot_id(&robot.name).unwrap_or_default();
    let budget = dingtail::source::checkpoint::state_dir(None)
        .ok()
        .and_then(|d| dingtail::budget::ledger_file::LedgerFile::open(&d).ok())
        .and_then(|f| dingtail::budget::SharedBudget::open(&config, Some(f)).ok());
    let counted = std::time::SystemTime::now();
    if let Some(b) = &budget
        && let dingtail::budget::Verdict::Spent { why, .. } = b.record_anyway(robot_id, counted)
    {
        eprintln!(
            "dingtail: warning: robot {}: {why}; sending anyway as asked",
            robot.name
        );
    }
    let result = runtime().block_on(async {
        let client = Client::for_robot(&robot)?;
        client.post(&robot, body).await
    });
    if let (Some(b), Err(dingtail::dingtalk::SendError::Api { .. })) = (&budget, &result) {
        b.refund(robot_id, counted, std::time::SystemTime::now());
    }
    match result {
        Ok(answer) => {
            println!("{}", answer.raw);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dingtail: robot {}: {e}", robot.name);
            ExitCode::from(EXIT_UNDELIVERED)
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start the tokio runtime")
}

/// Logs go to stderr; `DINGTAIL_LOG` sets the filter (default: info).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DINGTAIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Every log line passes the redaction step (libraries log request URLs at debug level).
        .with_writer(|| dingtail::redact::RedactingWriter(std::io::stderr()))
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .compact()
        .init();
}

fn hostname() -> String {
    std::env::var("DINGTAIL_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
}
