//! The `dingtail` binary: parses the command line, calls the library, maps errors to exit codes
//! (0 all delivered, 1 something not delivered or a runtime failure, 2 usage or config error).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use dingtail::app::{self, RunOptions};
use dingtail::cli::{Cli, Command, ConfigArg, InitArgs, RunArgs, SendArgs, TestArgs};
use dingtail::config::{self, Config};
use dingtail::dingtalk::{Client, message};
use dingtail::pretty::Presentation;
use dingtail::redact::redact_patterns;
use dingtail::tester;

const EXIT_UNDELIVERED: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Check(c) => check(&c),
        Command::Run(args) => run(args),
        Command::Test(args) => test(args),
        Command::Send(args) => send(&args),
        Command::Completions(args) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut cmd, "dingtail", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = std::io::stdout().lock();
            match dingtail::manpage::render(cmd, &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("dingtail: cannot write the man page: {e}");
                    ExitCode::from(EXIT_UNDELIVERED)
                }
            }
        }
        Command::Init(args) => init(&args),
        Command::Silence(cmd) => silence(cmd),
    }
}

/// `dingtail run`: the whole pipeline, then the summary on stderr.
fn run(args: RunArgs) -> ExitCode {
    // A dry run sends nothing, so it does not need the robots' secrets.
    let loaded = if args.dry_run {
        load_without_secrets(&args.config)
    } else {
        load(&args.config)
    };
    let config = match loaded {
        Ok(c) => c,
        Err(code) => return code,
    };
    let startup = dingtail::startup::describe(
        &config,
        &args.paths,
        args.once,
        args.dry_run,
        dingtail::startup::Stdin::detect(),
    );
    eprintln!("{}", startup.line);
    for warning in &startup.warnings {
        eprintln!("dingtail: warning: {warning}");
    }
    if startup.nothing_to_read {
        eprintln!("dingtail: --once and no file to read");
        return ExitCode::from(EXIT_USAGE);
    }
    let opts = RunOptions {
        dry_run: args.dry_run,
        tee: args.tee,
        shutdown_timeout: args.shutdown_timeout,
        host: hostname(),
        paths: args.paths,
        from_beginning: args.from_beginning,
        once: args.once,
        state_dir: args.state_dir,
        presentation: dingtail::pretty::Presentation::for_stdout(args.format),
        listen: args.listen,
        config_path: config_path(&args.config),
        watch_config: args.watch_config,
    };
    let result = runtime().block_on(async {
        // Handlers first: a signal that arrives while files are being taken up must be
        // a clean stop (checkpoints written), not the default action (killed).
        let shutdown = app::shutdown::on_signal();
        app::run(config, opts, shutdown).await
    });
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
            // A state directory that cannot be used, or options that contradict each
            // other or the config, are setup errors, like a bad config.
            if e.downcast_ref::<dingtail::source::checkpoint::StoreError>()
                .is_some()
                || e.downcast_ref::<app::UsageError>().is_some()
            {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_UNDELIVERED)
            }
        }
    }
}

/// `dingtail test [--replay]`: which lines match which rules, or what the rules would send.
fn test(args: TestArgs) -> ExitCode {
    let config = match load_without_secrets(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let presentation = Presentation::for_stdout(args.format);
    let size;
    let input: Box<dyn std::io::Read> = match &args.path {
        Some(p) => match std::fs::File::open(p) {
            Ok(f) => {
                size = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
                Box::new(f)
            }
            Err(e) => {
                eprintln!("dingtail: cannot open {}: {e}", p.display());
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => {
            // Redirected from a file (`< big.log`): its size, for the progress bar.
            size = std::fs::metadata("/dev/stdin")
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            Box::new(std::io::stdin().lock())
        }
    };
    let result = if args.replay {
        dingtail::replay::replay_as(
            &config,
            input,
            config.multiline_for(args.path.as_deref()),
            &mut out,
            &hostname(),
            args.line_interval,
            presentation,
        )
        .map(|_| ())
    } else {
        let bar = dingtail::progress::bar(size);
        let started = std::time::Instant::now();
        let mut tick = |r: &tester::TestReport| {
            if let Some(bar) = &bar {
                bar.set_position(r.bytes);
                bar.set_message(dingtail::progress::message(
                    r.lines,
                    r.matched_lines,
                    started.elapsed().as_secs_f64(),
                ));
            }
        };
        let multiline = config.multiline_for(args.path.as_deref());
        let result = tester::run_as(&config, input, multiline, &mut out, presentation, &mut tick);
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        result.map(|_| ())
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
    // The config names the listener (unless --listen does) and the zone times are shown in.
    let config = match config_path(&target.config).map(|p| config::load(&p)) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) if target.listen.is_none() => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
        Some(Err(_)) | None => None,
    };
    let place = Place {
        listen: target.listen.or(config.as_ref().and_then(|c| c.listen)),
        state_dir: target.state_dir,
        zone: config.map_or_else(dingtail::timezone::Zone::from_env, |c| c.timezone),
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

/// [`load`] for commands that send nothing (`test`, `run --dry-run`): an unset `${VAR}` is
/// not an error there, since nothing needs the robots' tokens and secrets to render a message.
/// Unset variables stand for a placeholder and are named in one note on stderr.
fn load_without_secrets(arg: &ConfigArg) -> Result<Config, ExitCode> {
    let Some(path) = config_path(arg) else {
        return Ok(Config::builtin());
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return load(arg); // the same error as every other command
    };
    let unset = std::cell::RefCell::new(Vec::<String>::new());
    let env = |name: &str| {
        std::env::var(name).ok().or_else(|| {
            unset.borrow_mut().push(name.to_owned());
            // Passes the checks a real value passes (a signing secret starts with SEC).
            Some(format!("SEC-unset-{name}"))
        })
    };
    let config = config::parse_str(&text, &path.display().to_string(), &env).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_USAGE)
    })?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    let mut unset = unset.into_inner();
    unset.sort();
    unset.dedup();
    if !unset.is_empty() {
        eprintln!(
            "dingtail: note: {} not set; fine here (nothing is sent), needed by `dingtail run` and `send`",
            unset.join(", ")
        );
    }
    Ok(config)
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
        robot.send.keyword.as_deref(),
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
        let client = Client::for_endpoint(&robot.endpoint)?;
        client.post(&robot.endpoint, body).await
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

/// `dingtail init`: recognise the samples, write the starter config, replay each sample through it.
fn init(args: &InitArgs) -> ExitCode {
    use dingtail::init;
    let samples = match init::survey(&args.samples) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dingtail: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let inputs: Vec<PathBuf> = args.samples.iter().map(|p| init::absolute(p)).collect();
    let text = init::starter(&samples, &inputs, None);
    let origin = args.output.display().to_string();
    let config = match config::parse_str(&text, &origin, &|_| None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dingtail: bug: init made a config that does not load:\n{e}");
            return ExitCode::from(EXIT_UNDELIVERED);
        }
    };
    for s in &samples {
        let packs: Vec<String> = s
            .fits
            .iter()
            .map(|f| format!("{} ({} of {} lines)", f.pack.file, f.matched, f.lines))
            .collect();
        eprintln!(
            "dingtail: {}: {}",
            s.path.display(),
            if packs.is_empty() {
                "no known format; using the built-in rules".to_owned()
            } else {
                format!("recognised {}", packs.join(", "))
            }
        );
    }
    if args.stdout {
        print!("{text}");
    } else {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .create_new(!args.force)
            .open(&args.output);
        let written = file.and_then(|mut f| f.write_all(text.as_bytes()));
        match written {
            Ok(()) => eprintln!(
                "dingtail: wrote {} ({} rules); next: set up a robot in it, then `dingtail check`",
                args.output.display(),
                config.rules.len()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                eprintln!(
                    "dingtail: {} exists; not replacing it (use --force, or -o another file)",
                    args.output.display()
                );
                return ExitCode::from(EXIT_USAGE);
            }
            Err(e) => {
                eprintln!("dingtail: cannot write {}: {e}", args.output.display());
                return ExitCode::from(EXIT_UNDELIVERED);
            }
        }
    }
    // What each sample would have sent, replayed with its own format's timestamps. With
    // --stdout the config owns stdout, so the replay goes to stderr.
    let presentation = if args.stdout {
        Presentation::MACHINE
    } else {
        Presentation::for_stdout(dingtail::cli::OutputFormat::Auto)
    };
    for s in &samples {
        let own = s.fits.first().map_or(&init::FALLBACK, |f| f.pack);
        let text = init::starter(&samples, &inputs, Some(own));
        let config = match config::parse_str(&text, &origin, &|_| None) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("dingtail: bug: init made a config that does not load:\n{e}");
                return ExitCode::from(EXIT_UNDELIVERED);
            }
        };
        let file = match std::fs::File::open(&s.path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("dingtail: cannot read {}: {e}", s.path.display());
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let mut out: Box<dyn Write> = if args.stdout {
            Box::new(std::io::stderr().lock())
        } else {
            Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
        };
        let _ = writeln!(
            out,
            "\n=== dingtail test --replay {}: what these rules would have sent",
            s.path.display()
        );
        let replayed = dingtail::replay::replay_as(
            &config,
            file,
            config.multiline_for(Some(s.path.as_path())),
            &mut out,
            &hostname(),
            std::time::Duration::from_secs(1),
            presentation,
        );
        let _ = out.flush();
        if let Err(e) = replayed {
            eprintln!("dingtail: {}: {e}", s.path.display());
            return ExitCode::from(EXIT_UNDELIVERED);
        }
    }
    ExitCode::SUCCESS
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
