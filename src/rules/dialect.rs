//! The regex dialect of rule patterns, in one place so the matcher, the checker and `dingtail
//! test` agree on what a pattern means: bytes (not UTF-8), multi-line anchors that treat `\r\n`
//! as a line end, a size limit, and errors explained on one line.

use std::sync::Arc;

use regex::bytes::RegexBuilder;

/// Largest compiled program per regex: generous, but stops a pattern like `\w{100000}` from
/// eating the sidecar's memory.
pub const REGEX_SIZE_LIMIT: usize = 32 * 1024 * 1024;

/// The regex dialect every rule pattern is compiled with, in one place so the matcher, the
/// checker and `dingtail test` agree on what a pattern means.
pub fn regex_builder(pattern: &str) -> RegexBuilder {
    let mut b = RegexBuilder::new(pattern);
    b.multi_line(true).crlf(true).size_limit(REGEX_SIZE_LIMIT);
    b
}

/// The named capture groups of a pattern, in order (empty when it does not parse: the error is
/// reported on its own). Read from the syntax tree alone: compiling the pattern for this would
/// cost as much again as checking it.
pub fn capture_names(pattern: &str) -> Vec<Arc<str>> {
    use regex_syntax::ast::{self, Ast, GroupKind, Visitor};
    struct Names(Vec<(u32, Arc<str>)>);
    impl Visitor for Names {
        type Output = Vec<(u32, Arc<str>)>;
        type Err = ();
        fn finish(self) -> Result<Self::Output, ()> {
            Ok(self.0)
        }
        fn visit_pre(&mut self, ast: &Ast) -> Result<(), ()> {
            if let Ast::Group(g) = ast
                && let GroupKind::CaptureName { name, .. } = &g.kind
            {
                self.0.push((name.index, Arc::from(name.name.as_str())));
            }
            Ok(())
        }
    }
    let Ok(tree) = ast::parse::Parser::new().parse(pattern) else {
        return Vec::new();
    };
    let mut names = ast::visit(&tree, Names(Vec::new())).unwrap_or_default();
    names.sort_by_key(|(i, _)| *i);
    names.into_iter().map(|(_, n)| n).collect()
}

pub(super) fn names_of(re: &regex_automata::meta::Regex) -> Vec<Arc<str>> {
    re.group_info()
        .pattern_names(regex_automata::PatternID::ZERO)
        .flatten()
        .map(Arc::from)
        .collect()
}

/// `pattern` compiled as the regex crate would compile it (same syntax, same size limit, the same
/// errors), without the search engines: a `regex::bytes::Regex` also determinizes small patterns
/// into full DFAs, which with a thousand rules took most of a second at start. The matcher builds
/// what it searches with itself.
fn checked(pattern: &str) -> Result<regex_automata::meta::Regex, regex::Error> {
    use regex_automata::meta;
    use regex_automata::util::syntax;
    meta::Regex::builder()
        .syntax(
            syntax::Config::new()
                .utf8(false)
                .multi_line(true)
                .crlf(true),
        )
        .configure(
            meta::Config::new()
                .utf8_empty(false)
                .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
                .dfa(false)
                .onepass(false)
                .backtrack(false)
                .hybrid(false),
        )
        .build(pattern)
        .map_err(|e| match (e.size_limit(), e.syntax_error()) {
            (Some(limit), _) => regex::Error::CompiledTooBig(limit),
            (None, Some(syntax)) => regex::Error::Syntax(syntax.to_string()),
            (None, None) => regex::Error::Syntax(e.to_string()),
        })
}

/// A pattern that matches the empty string would make every line a hit: almost always a
/// mistake (`a*`, `|x`), so it is refused with an explanation. A field rule may match an empty
/// value on purpose (`^$`), so it is allowed there.
/// Checks a rule's pattern (see [`checked`]) and that it cannot match an empty line.
pub(super) fn check_pattern(
    pattern: &str,
    field: bool,
) -> Result<regex_automata::meta::Regex, String> {
    let re = checked(pattern).map_err(|e| explain(&e))?;
    if !field && re.is_match(b"") {
        return Err(format!(
            "`{pattern}` matches the empty string, so every line would be a hit"
        ));
    }
    Ok(re)
}
/// The regex error, on one line where possible (the multi-line form points with `^` at the
/// pattern, which does not survive our `file:line:col:` prefix well).
pub(crate) fn explain(err: &regex::Error) -> String {
    match err {
        regex::Error::Syntax(text) => {
            let last = text.lines().rev().find(|l| l.starts_with("error:"));
            let mut msg = match last {
                Some(l) => format!("invalid regex: {}", l.trim_start_matches("error:").trim()),
                None => format!("invalid regex: {}", text.trim()),
            };
            // The common mistake: a pattern written for PCRE or Java.
            if msg.contains("look-around") {
                msg.push_str(
                    "; dingtail's regexes have no (?=…), (?!…), (?<=…) or (?<!…): match the line \
                     itself, and put what must not be in it under `exclude:`",
                );
            }
            msg
        }
        regex::Error::CompiledTooBig(limit) => {
            format!("regex is too big once compiled (limit {limit} bytes); simplify it")
        }
        other => format!("invalid regex: {other}"),
    }
}
