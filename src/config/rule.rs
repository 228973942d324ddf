//! One rule's fields beyond its pattern checked into a [`RuleSpec`].

use super::*;

/// Checks a rule's fields beyond its pattern (threshold, cooldown, grouping, templates, mentions,
/// routing, JSON fields, recovery, absence) into `spec`. Returns where the pattern is written, or `None`
/// when the rule has no usable pattern (then it is not compiled; the problem is recorded).
pub(super) fn check_rule_fields<'r>(
    c: &mut Checker,
    raw: &'r Spanned<RawRule>,
    name: &str,
    spec: &mut RuleSpec,
    defaults: &MessageDefaults,
) -> Option<&'r Spanned<String>> {
    let rule = &raw.value;
    let ctx = |field: &str| format!("rule '{name}', field '{field}'");
    let pattern_at = match (&rule.pattern, &rule.absent) {
        (Some(p), None) => p,
        (None, Some(a)) => {
            spec.absent_for = c.duration(&a.value.duration, &ctx("absent.for"), limits::LONG);
            let not_here = [
                ("threshold", rule.threshold.is_some()),
                ("cooldown", rule.cooldown.is_some()),
                ("field", rule.field.is_some()),
                ("escalate", rule.escalate.is_some()),
                ("where", rule.condition.is_some()),
                ("resolve_after", rule.resolve_after.is_some()),
            ];
            for (field, present) in not_here {
                if present {
                    c.problem(
                        a,
                        ctx(field),
                        "does not apply to an absent rule (it alerts on silence, and says when the line is back)",
                    );
                }
            }
            &a.value.pattern
        }
        (Some(_), Some(a)) => {
            c.problem(
                a,
                ctx("absent"),
                "a rule has either `match` or `absent`, not both",
            );
            return None;
        }
        (None, None) => {
            c.problem(
                &rule.name,
                ctx("match"),
                "is missing: give `match` (or `absent: {match, for}`)",
            );
            return None;
        }
    };
    spec.pattern = pattern_at.value.clone();
    let captures = capture_names(&spec.pattern);

    let mut style = Style {
        msgtype: defaults.msgtype,
        absent_pattern: rule.absent.as_ref().map(|a| a.value.pattern.value.clone()),
        ..Style::default()
    };
    if let Some(s) = &rule.severity {
        style.severity = check_severity(c, s, &ctx("severity"));
    }
    if let Some(t) = &rule.threshold {
        let count = t.value.count.value;
        if count == 0 || count > MAX_THRESHOLD_COUNT {
            c.problem(
                &t.value.count,
                ctx("threshold.count"),
                format!("must be between 1 and {MAX_THRESHOLD_COUNT}"),
            );
        }
        let within = c.duration(&t.value.within, &ctx("threshold.within"), limits::WINDOW);
        if let Some(within) = within {
            spec.threshold = Some(Threshold {
                count: count.clamp(1, MAX_THRESHOLD_COUNT),
                within,
            });
        }
    }
    if let Some(cd) = &rule.cooldown {
        spec.cooldown = c.duration(cd, &ctx("cooldown"), limits::LONG);
    }
    for g in &rule.group_by {
        if !captures.iter().any(|n| **n == *g.value) {
            let known = if captures.is_empty() {
                "the pattern has no named captures; write (?P<name>...)".to_owned()
            } else {
                format!("named captures are: {}", captures.join(", "))
            };
            c.problem(
                g,
                ctx("group_by"),
                format!(
                    "{} is not a named capture of the pattern ({known})",
                    quoted(&g.value)
                ),
            );
        } else if spec.group_by.contains(&g.value) {
            c.problem(
                g,
                ctx("group_by"),
                format!("names {} twice", quoted(&g.value)),
            );
        } else {
            spec.group_by.push(g.value.clone());
        }
    }
    if let Some(m) = &rule.max_groups {
        if m.value == 0 || m.value > MAX_GROUPS_LIMIT {
            c.problem(
                m,
                ctx("max_groups"),
                format!("must be between 1 and {MAX_GROUPS_LIMIT}"),
            );
        } else if rule.group_by.is_empty() {
            c.problem(m, ctx("max_groups"), "needs group_by");
        } else {
            spec.max_groups = m.value;
        }
    }
    if let Some(t) = &rule.template {
        let hazard = t.value.chars().any(|ch| {
            ch == '【' || ch == '】' || (ch != '\n' && crate::dingtalk::neutral::is_hazard(ch))
        });
        if t.value.chars().count() > MAX_TEMPLATE_CHARS {
            c.problem(
                t,
                ctx("template"),
                format!("is longer than {MAX_TEMPLATE_CHARS} characters"),
            );
        } else if hazard {
            c.problem(
                t,
                ctx("template"),
                "contains 【, 】 or a control, bidi or zero-width character: only the header a \
                 message starts with may look like 【rule】",
            );
        } else {
            match Template::parse(&t.value, &captures) {
                Ok(t) => style.template = Some(t),
                Err(e) => c.problem(t, ctx("template"), e),
            }
        }
    }
    style.mention = mention_or_default(
        c,
        rule.mention.as_ref(),
        style.severity,
        defaults,
        &ctx("mention"),
    );
    if let Some(m) = &rule.msgtype
        && let Some(t) = check_msgtype(c, m, &ctx("msgtype"))
    {
        style.msgtype = t;
    }
    if let Some(f) = &rule.field {
        let path: Vec<String> = f.value.split('.').map(|s| s.trim().to_owned()).collect();
        if path.iter().any(String::is_empty) {
            c.problem(
                f,
                ctx("field"),
                format!(
                    "{} is not a field path; write e.g. level or log.level",
                    quoted(&f.value)
                ),
            );
        } else {
            spec.field = Some(path);
        }
    }
    if let Some(w) = &rule.condition {
        match crate::where_expr::Where::parse(&w.value) {
            Ok(cond) => spec.condition = Some(cond),
            Err(e) => c.problem(
                w,
                ctx("where"),
                format!(
                    "at character {} of the condition: {}",
                    e.offset + 1,
                    e.message
                ),
            ),
        }
    }
    if let Some(r) = &rule.resolve_after {
        spec.resolve_after = c.duration(r, &ctx("resolve_after"), limits::LONG);
    }
    if let Some(e) = &rule.escalate {
        let has_resolve = rule.resolve_after.is_some();
        spec.escalate = escalate::check_escalate(c, e, name, has_resolve, &defaults.people);
    }
    spec.style = style;
    Some(pattern_at)
}
