//! The checker: raw → [`Config`], gathering every problem instead of stopping at the first.

use super::*;

/// Gathers the problems and warnings of one config while it is checked.
pub(super) struct Checker<'a> {
    /// The file name, for every problem.
    pub(super) origin: &'a str,
    /// Reads a `*_file` (see [`read_secret_file`]): the checker does no I/O of its own.
    pub(super) read_file: &'a dyn Fn(&Path) -> std::io::Result<SecretFile>,
    pub(super) problems: Vec<Problem>,
    pub(super) warnings: Vec<Problem>,
}

impl Checker<'_> {
    pub(super) fn problem<T>(
        &mut self,
        at: &Spanned<T>,
        context: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            file: self.origin.to_owned(),
            line: at.referenced.line(),
            column: at.referenced.column(),
            context: context.into(),
            message: message.into(),
        });
    }

    /// A duration field: above zero and at most `max` (see [`limits`]).
    pub(super) fn duration(
        &mut self,
        raw: &Spanned<String>,
        context: &str,
        max: Duration,
    ) -> Option<Duration> {
        match parse_duration_in(&raw.value, max) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(raw, context, e);
                None
            }
        }
    }

    pub(super) fn max_lines(&mut self, raw: &Spanned<usize>, context: &str) -> Option<usize> {
        if raw.value == 0 || raw.value > 1000 {
            self.problem(raw, context, "must be between 1 and 1000");
            return None;
        }
        Some(raw.value)
    }
}

/// Checks `raw` into a [`Config`]. `broken_robots` are robots whose own schema errors were
/// reported already: naming them elsewhere is not a problem of its own. Pure but for `env` and
/// `read_file`, which the caller provides.
pub(super) fn check(
    raw: RawConfig,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> std::io::Result<SecretFile>,
    broken_robots: &[String],
) -> Result<Config, ConfigError> {
    let mut c = Checker {
        origin,
        read_file,
        problems: Vec::new(),
        warnings: Vec::new(),
    };

    // Robots by [`RobotId`] (their place among the names, sorted); `None` where a robot has a
    // problem (then the config is refused, but its name may still be used elsewhere).
    let mut robots: Vec<Option<RobotConfig>> = (raw.robots.iter())
        .map(|(name, robot)| check_robot(&mut c, name, robot, env))
        .collect();
    let robot_names: Vec<&str> = raw.robots.keys().map(String::as_str).collect();
    let find_robot = |c: &mut Checker, raw: &Spanned<String>, context: &str| {
        let found: Option<RobotId> = robot_names.iter().position(|n| *n == raw.value);
        if found.is_none() && !broken_robots.contains(&raw.value) {
            let mut all: Vec<&str> = robot_names.clone();
            all.extend(broken_robots.iter().map(String::as_str));
            all.sort_unstable();
            let known = if all.is_empty() {
                "no robots are defined".to_owned()
            } else {
                format!("robots are: {}", all.join(", "))
            };
            c.problem(
                raw,
                context,
                format!("unknown robot {} ({known})", quoted(&raw.value)),
            );
        }
        found
    };

    // Fallbacks: must exist, and following them must never come back (a cycle would keep two
    // dispatchers waiting for each other at shutdown).
    let mut fallbacks: BTreeMap<RobotId, RobotId> = BTreeMap::new();
    for (id, robot) in raw.robots.values().enumerate() {
        if let Some(f) = &robot.value.fallback {
            let ctx = format!("robot '{}', field 'fallback'", robot_names[id]);
            match find_robot(&mut c, f, &ctx) {
                Some(to) if to == id => c.problem(f, ctx, "a robot cannot be its own fallback"),
                Some(to) => {
                    fallbacks.insert(id, to);
                }
                None => {}
            }
        }
    }
    for (&id, &first) in &fallbacks {
        let mut visited = vec![id];
        let mut next = Some(first);
        while let Some(n) = next {
            if visited.contains(&n) {
                if let Some(f) = &raw.robots[robot_names[id]].value.fallback {
                    c.problem(
                        f,
                        format!("robot '{}', field 'fallback'", robot_names[id]),
                        "fallbacks form a cycle",
                    );
                }
                break;
            }
            visited.push(n);
            next = fallbacks.get(&n).copied();
        }
    }
    for (id, to) in fallbacks {
        if let Some(robot) = &mut robots[id] {
            robot.fallback = Some(to);
        }
    }
    // A robot with a problem leaves the list short; the config is refused then.
    let robots: Vec<RobotConfig> = robots.into_iter().flatten().collect();

    let defaults = raw.defaults.as_ref();
    let default_robot = match defaults.and_then(|d| d.robot.as_ref()) {
        Some(r) => find_robot(&mut c, r, "defaults, field 'robot'"),
        // One robot and no default: it is the default.
        None if robot_names.len() == 1 => Some(0),
        None => None,
    };
    let default_window = defaults
        .and_then(|d| d.window.as_ref())
        .and_then(|w| c.duration(w, "defaults, field 'window'", limits::WINDOW))
        .unwrap_or(DEFAULT_WINDOW);
    let default_max_lines = defaults
        .and_then(|d| d.max_lines.as_ref())
        .and_then(|m| c.max_lines(m, "defaults, field 'max_lines'"))
        .unwrap_or(DEFAULT_MAX_LINES);
    let max_line_bytes = match &raw.max_line_bytes {
        Some(m) if m.value < 256 || m.value > 16 * 1024 * 1024 => {
            c.problem(
                m,
                "field 'max_line_bytes'",
                "must be between 256 and 16777216",
            );
            DEFAULT_MAX_LINE_BYTES
        }
        Some(m) => m.value,
        None => DEFAULT_MAX_LINE_BYTES,
    };

    let people = people::check_people(&mut c, &raw.people);
    let message_defaults = check_message_defaults(&mut c, defaults, people);
    let mut all_rule_names: Vec<&str> = (raw.rules.iter())
        .map(|r| r.value.name.value.trim())
        .collect();
    if raw.new_patterns.is_some() {
        all_rule_names.push(crate::new_pattern::RULE_NAME);
    }
    let routes = routes::check_routes(
        &mut c,
        &raw.routes,
        &find_robot,
        &message_defaults.people,
        &all_rule_names,
    );
    let timestamp = raw
        .timestamp
        .as_ref()
        .and_then(|t| check_timestamp(&mut c, t));
    let pii = pii::check_redact(&mut c, raw.redact.as_ref());
    let mut names = HashSet::new();
    let mut rules = Vec::new();
    for spanned in &raw.rules {
        let rule = &spanned.value;
        let name = rule.name.value.trim().to_owned();
        let ctx = |field: &str| format!("rule '{name}', field '{field}'");
        if name.is_empty()
            || name.chars().count() > MAX_RULE_NAME
            || name.contains(['【', '】'])
            || name.chars().any(crate::dingtalk::neutral::is_hazard)
        {
            c.problem(
                &rule.name,
                ctx("name"),
                format!(
                    "a rule name is one line of 1 to {MAX_RULE_NAME} characters, without 【】 \
                     (it is shown as 【name】) or control, bidi and zero-width characters"
                ),
            );
        } else if !names.insert(name.clone()) {
            c.problem(&rule.name, ctx("name"), "another rule has the same name");
        }
        let window = check_window(&mut c, rule.window.as_ref(), &ctx("window"), default_window);
        let max_lines = match &rule.max_lines {
            Some(m) => c.max_lines(m, &ctx("max_lines")),
            None => Some(default_max_lines),
        };
        let robots: Vec<RobotId> = match &rule.robot {
            Some(list) => check_robot_list(&mut c, list, &find_robot, &ctx("robot")),
            None => default_robot.into_iter().collect(),
        };
        let default_broken = defaults
            .and_then(|d| d.robot.as_ref())
            .is_some_and(|r| broken_robots.contains(&r.value));
        if robots.is_empty()
            && rule.robot.is_none()
            && !default_broken
            && robot_names.len() + broken_robots.len() > 1
        {
            c.problem(
                &rule.name,
                ctx("robot"),
                "several robots are defined: name one here or in defaults.robot",
            );
        }
        let mut spec = RuleSpec {
            name: name.clone(),
            exclude: rule.exclude.iter().map(|e| e.value.clone()).collect(),
            window: window.unwrap_or(default_window),
            max_lines: max_lines.unwrap_or(default_max_lines),
            robots,
            max_groups: DEFAULT_MAX_GROUPS,
            ..RuleSpec::default()
        };
        let Some(pattern_at) =
            check_rule_fields(&mut c, spanned, &name, &mut spec, &message_defaults)
        else {
            continue;
        };
        spec.style.pii = pii.clone();
        spec.routes = routes::for_rule(&routes, &name);
        match Rule::compile(spec) {
            Ok(r) => rules.push(r),
            Err(e) => {
                let at = match e.exclude_index {
                    Some(i) => &rule.exclude[i],
                    None => pattern_at,
                };
                let field = if e.exclude_index.is_some() {
                    "exclude"
                } else if rule.absent.is_some() {
                    "absent"
                } else {
                    "match"
                };
                c.problem(at, ctx(field), e.message);
            }
        }
    }

    // `new_patterns:` is one more rule, after the config's (see crate::new_pattern).
    let new_patterns = raw.new_patterns.as_ref().and_then(|n| {
        let around = new_patterns::Around {
            find_robot: &find_robot,
            default_robot,
            robots: robot_names.len() + broken_robots.len(),
            default_window,
            look: &message_defaults,
            pii: &pii,
            routes: &routes,
            rule_names: &names,
        };
        let (settings, rule) = new_patterns::check_new_patterns(&mut c, n, &around)?;
        rules.push(rule);
        Some(settings)
    });

    let inputs: Vec<InputConfig> = raw
        .inputs
        .iter()
        .enumerate()
        .filter_map(|(i, input)| check_input(&mut c, i, &input.value, env))
        .collect();
    let stdin = check_stdin(&mut c, raw.stdin.as_ref(), &raw.inputs, &inputs);
    let stale_inputs: Vec<(String, &Spanned<String>)> = (raw.inputs.iter())
        .filter_map(|i| {
            Some((
                i.value.path.value.trim().to_owned(),
                i.value.stale.as_ref()?,
            ))
        })
        .collect();
    let stale = stale::check_stale(
        &mut c,
        &stale_inputs,
        raw.stdin.as_ref(),
        default_robot,
        robot_names.len(),
    );
    let timezone = check_timezone(&mut c, raw.timezone.as_ref());
    let mutes = mute_config::check_mutes(&mut c, &raw.mute, &all_rule_names);
    let quiet_hours = mute_config::check_quiet_hours(&mut c, raw.quiet_hours.as_ref());
    let listen = raw.listen.as_ref().and_then(|l| {
        l.value
            .trim()
            .parse()
            .map_err(|_| {
                c.problem(
                    l,
                    "field 'listen'",
                    "expected an address with a port, such as 127.0.0.1:9177 or [::]:9177",
                )
            })
            .ok()
    });
    let robot_monthly: Vec<_> = (raw.robots.iter())
        .map(|(n, r)| (n.as_str(), r.value.monthly.as_ref()))
        .collect();
    let quota = quota::check_quota(&mut c, raw.quota.as_ref(), &robot_monthly);
    let robot_names: Vec<&str> = raw.robots.keys().map(String::as_str).collect();
    let self_alerts =
        self_alerts::check_self_alerts(&mut c, raw.self_alerts.as_ref(), &robot_names);
    let coordination = coordination::check_coordination(&mut c, raw.coordination.as_ref(), env);

    if c.problems.is_empty() {
        Ok(Config {
            origin: origin.to_owned(),
            robots,
            rules,
            default_robot,
            max_line_bytes,
            timestamp,
            warnings: c.warnings,
            inputs,
            stdin,
            timezone,
            listen,
            mutes,
            quiet_hours,
            quota,
            stale,
            self_alerts,
            coordination,
            new_patterns,
        })
    } else {
        // In file order, so the list reads like the file (a problem without a line stays first).
        c.problems.sort_by_key(|p| (p.line, p.column));
        Err(ConfigError::Invalid(c.problems))
    }
}

/// `timezone:` must be an IANA name the compiled-in database knows; without it, `TZ` or the
/// host's zone (see [`Zone::from_env`]).
pub(super) fn check_timezone(c: &mut Checker, raw: Option<&Spanned<String>>) -> Zone {
    let Some(raw) = raw else {
        return Zone::from_env();
    };
    Zone::parse(&raw.value).unwrap_or_else(|| {
        c.problem(
            raw,
            "field 'timezone'",
            format!(
                "unknown time zone `{}`: use an IANA name such as Asia/Shanghai or UTC",
                raw.value
            ),
        );
        Zone::Host
    })
}

/// Defaults that shape messages: mentions by severity and the message type.
#[derive(Debug, Default)]
pub(super) struct MessageDefaults {
    pub(super) mention: BTreeMap<Severity, Mention>,
    pub(super) msgtype: MsgType,
    /// `people:` groups, for every `mention:`.
    pub(super) people: people::People,
}

pub(super) fn check_msgtype(
    c: &mut Checker,
    raw: &Spanned<String>,
    context: &str,
) -> Option<MsgType> {
    match raw.value.trim() {
        "text" => Some(MsgType::Text),
        "markdown" => Some(MsgType::Markdown),
        other => {
            c.problem(
                raw,
                context,
                format!(
                    "{} is not a message type; write text or markdown",
                    quoted(other)
                ),
            );
            None
        }
    }
}

pub(super) fn check_message_defaults(
    c: &mut Checker,
    defaults: Option<&RawDefaults>,
    people: people::People,
) -> MessageDefaults {
    let mut shaped = MessageDefaults {
        people,
        ..MessageDefaults::default()
    };
    let Some(d) = defaults else {
        return shaped;
    };
    if let Some(m) = &d.msgtype {
        shaped.msgtype = check_msgtype(c, m, "defaults, field 'msgtype'").unwrap_or_default();
    }
    for (severity, mention) in &d.mention {
        let ctx = format!("defaults, field 'mention.{severity}'");
        let people = people::resolve(c, &shaped.people, mention, &ctx);
        match Severity::parse(severity) {
            Some(s) => {
                shaped.mention.insert(s, people);
            }
            None => c.problem(
                mention,
                ctx,
                format!(
                    "mentions in defaults are by severity: {}",
                    Severity::NAMES.join(", ")
                ),
            ),
        }
    }
    shaped
}

pub(super) fn check_mention(c: &mut Checker, raw: &Spanned<RawMention>, context: &str) -> Mention {
    let m = &raw.value;
    let mut out = Mention {
        all: m.all,
        ..Mention::default()
    };
    for mobile in &m.mobiles {
        let v = mobile.value.trim();
        let digits = v.chars().filter(char::is_ascii_digit).count();
        if digits < 5
            || !v
                .chars()
                .all(|ch| ch.is_ascii_digit() || "+- ".contains(ch))
        {
            c.problem(
                mobile,
                context,
                format!(
                    "{} is not a phone number (digits, optionally + and -)",
                    quoted(v)
                ),
            );
        } else if !out.mobiles.iter().any(|x| x == v) {
            out.mobiles.push(v.to_owned());
        }
    }
    for user in &m.user_ids {
        let v = user.value.trim();
        if v.is_empty() || v.contains(char::is_whitespace) {
            c.problem(user, context, "a user id is one word");
        } else if !out.user_ids.iter().any(|x| x == v) {
            out.user_ids.push(v.to_owned());
        }
    }
    if out.people() > MAX_MENTIONS {
        c.problem(
            raw,
            context,
            format!(
                "names {} people; DingTalk mentions at most {MAX_MENTIONS} in one message",
                out.people()
            ),
        );
    }
    out
}
