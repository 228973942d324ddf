//! `where:` conditions: comparisons of named captures and JSON fields with boolean logic, e.g.
//! `status >= 500 and latency_ms > 1000`. Pure: parsed once at config time, evaluated on the
//! lines a rule's regex (or field) already matched.
//!
//! Grammar (keywords are lower case; whitespace is free):
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" expr ")" | compare
//! compare := NAME OP LITERAL
//! NAME    := [A-Za-z_][A-Za-z0-9_]* ("." [A-Za-z0-9_]+)*   a capture, else a JSON field path
//! OP      := == | != | < | <= | > | >=
//! LITERAL := a number (-12, 3.5, 1e3) | 'text' | "text"
//! ```
//!
//! Edges: against a number, the value is compared as a number (a JSON number, or text that
//! parses as one, `"500"`), and a value that is not a number makes the comparison false; against
//! text, values are compared as text (a JSON number by how it is written). A missing field (or
//! `null`, an object, an array) makes its comparison false — also `!=`; `not` then makes it true.
//! No precedence surprises: `not` binds tighter than `and`, `and` tighter than `or`.

use std::borrow::Cow;
use std::cmp::Ordering;

/// A parsed `where:` condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Where {
    /// Both hold.
    And(Box<Where>, Box<Where>),
    /// Either holds.
    Or(Box<Where>, Box<Where>),
    /// It does not hold.
    Not(Box<Where>),
    /// `name op literal`.
    Compare {
        /// Capture name or dotted JSON path.
        name: String,
        /// The comparison.
        op: Op,
        /// What it is compared with.
        value: Literal,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// Compared as numbers.
    Number(f64),
    /// Compared as text.
    Text(String),
}

/// A `where:` that does not parse: what is wrong and at which character (0-based) of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WhereError {
    /// What is wrong, for a person.
    pub message: String,
    /// Offset in characters into the expression, for the column in `check`'s report.
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Op(Op),
    Lit(Literal),
    And,
    Or,
    Not,
    /// `(`
    OpenParen,
    /// `)`
    CloseParen,
}

fn tokenize(src: &str) -> Result<Vec<(Token, usize)>, WhereError> {
    let chars: Vec<char> = src.chars().collect();
    let err = |offset: usize, message: String| WhereError { message, offset };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => {
                i += 1;
                Token::OpenParen
            }
            ')' => {
                i += 1;
                Token::CloseParen
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (Op::Eq, 2),
                    ('!', Some('=')) => (Op::Ne, 2),
                    ('<', Some('=')) => (Op::Le, 2),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', _) => (Op::Gt, 1),
                    ('=', _) => return Err(err(i, "`=` is not an operator; write `==`".into())),
                    _ => return Err(err(i, "`!` is not an operator; write `!=` or `not`".into())),
                };
                i += len;
                Token::Op(op)
            }
            '\'' | '"' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&d| d == c)
                    .ok_or_else(|| err(i, format!("this {c} is never closed")))?;
                let text: String = chars[i + 1..i + 1 + end].iter().collect();
                i += end + 2;
                Token::Lit(Literal::Text(text))
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '-' | '+'))
                {
                    // a sign only at the start or after an exponent
                    if matches!(chars[i], '-' | '+')
                        && i > start
                        && !matches!(chars[i - 1], 'e' | 'E')
                    {
                        break;
                    }
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                match text.parse::<f64>() {
                    Ok(n) if n.is_finite() => Token::Lit(Literal::Number(n)),
                    _ => return Err(err(start, format!("`{text}` is not a number"))),
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '.'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word.ends_with('.') || word.contains("..") {
                    return Err(err(start, format!("`{word}` is not a field name")));
                }
                match word.as_str() {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "not" => Token::Not,
                    _ => Token::Name(word),
                }
            }
            '&' | '|' => {
                return Err(err(
                    i,
                    format!("`{c}` is not an operator; write `and` / `or`"),
                ));
            }
            other => return Err(err(i, format!("unexpected `{other}`"))),
        };
        out.push((tok, start));
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    pos: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.len, |(_, o)| *o)
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, WhereError> {
        Err(WhereError {
            message: message.into(),
            offset: self.offset(),
        })
    }

    fn or(&mut self) -> Result<Where, WhereError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            left = Where::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Where, WhereError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            left = Where::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Where, WhereError> {
        match self.peek().cloned() {
            Some(Token::Not) => {
                self.pos += 1;
                Ok(Where::Not(Box::new(self.unary()?)))
            }
            Some(Token::OpenParen) => {
                self.pos += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Token::CloseParen) {
                    return self.fail("expected `)`");
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Token::Name(name)) => {
                self.pos += 1;
                let Some(Token::Op(op)) = self.peek().cloned() else {
                    return self.fail(format!(
                        "expected a comparison after `{name}` (== != < <= > >=)"
                    ));
                };
                self.pos += 1;
                let Some(Token::Lit(value)) = self.peek().cloned() else {
                    return self.fail(format!(
                        "expected a number or a quoted text to compare `{name}` with"
                    ));
                };
                self.pos += 1;
                Ok(Where::Compare { name, op, value })
            }
            Some(Token::Lit(_)) => {
                self.fail("a comparison starts with the field name: write `status >= 500`")
            }
            Some(_) => self.fail("expected a comparison, `not` or `(`"),
            None => self.fail("the condition ends too early"),
        }
    }
}

impl Where {
    /// Parses a `where:` expression (see the module docs for the grammar).
    pub fn parse(src: &str) -> Result<Where, WhereError> {
        let mut p = Parser {
            tokens: tokenize(src)?,
            pos: 0,
            len: src.chars().count(),
        };
        let w = p.or()?;
        if p.pos < p.tokens.len() {
            return p.fail("expected `and`, `or` or the end");
        }
        Ok(w)
    }

    /// The names the condition reads, in order of appearance (with repeats removed).
    pub fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        self.walk(&mut |n| {
            if !out.contains(&n) {
                out.push(n);
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a str)) {
        match self {
            Where::And(a, b) | Where::Or(a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Where::Not(a) => a.walk(f),
            Where::Compare { name, .. } => f(name),
        }
    }

    /// Whether the condition holds, with `lookup` giving a name's value as text (`None`:
    /// missing).
    pub fn holds<'v>(&self, lookup: &mut impl FnMut(&str) -> Option<Cow<'v, str>>) -> bool {
        match self {
            Where::And(a, b) => a.holds(lookup) && b.holds(lookup),
            Where::Or(a, b) => a.holds(lookup) || b.holds(lookup),
            Where::Not(a) => !a.holds(lookup),
            Where::Compare { name, op, value } => {
                let Some(v) = lookup(name) else {
                    return false;
                };
                let ord = match value {
                    Literal::Number(n) => match v.trim().parse::<f64>() {
                        Ok(x) => x.partial_cmp(n),
                        Err(_) => None,
                    },
                    Literal::Text(t) => Some(v.as_ref().cmp(t.as_str())),
                };
                let Some(ord) = ord else {
                    return false;
                };
                match op {
                    Op::Eq => ord == Ordering::Equal,
                    Op::Ne => ord != Ordering::Equal,
                    Op::Lt => ord == Ordering::Less,
                    Op::Le => ord != Ordering::Greater,
                    Op::Gt => ord == Ordering::Greater,
                    Op::Ge => ord != Ordering::Less,
                }
            }
        }
    }

    /// [`Where::holds`] on a matched line: a name is the rule's named capture when `captures`
    /// has it (`(name, value)`), else a field of the line parsed as a JSON object (dotted path;
    /// strings as they are, numbers and booleans as JSON writes them).
    pub fn holds_on(&self, line: &[u8], captures: &[(&str, &[u8])]) -> bool {
        let mut json: Option<Option<serde_json::Value>> = None;
        self.holds(&mut |name: &str| {
            if let Some((_, v)) = captures.iter().find(|(n, _)| *n == name) {
                return Some(Cow::Owned(String::from_utf8_lossy(v).into_owned()));
            }
            let doc = json.get_or_insert_with(|| {
                let start = line.iter().position(|b| !b.is_ascii_whitespace())?;
                (line[start] == b'{')
                    .then(|| serde_json::from_slice(&line[start..]).ok())
                    .flatten()
            });
            let mut v = doc.as_ref()?;
            for key in name.split('.') {
                v = v.as_object()?.get(key)?;
            }
            match v {
                serde_json::Value::String(s) => Some(Cow::Owned(s.clone())),
                serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
                serde_json::Value::Bool(b) => Some(Cow::Owned(b.to_string())),
                _ => None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str, line: &str, caps: &[(&str, &str)]) -> bool {
        let caps: Vec<(&str, &[u8])> = caps.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        Where::parse(src).unwrap().holds_on(line.as_bytes(), &caps)
    }

    #[test]
    fn conditions_on_json_fields_and_captures() {
        let j = r#"{"status": 503, "latency_ms": 1500.5, "path": "/pay", "user": {"tier": "gold"}, "code": "0042", "ok": false, "n": null}"#;
        for (src, line, caps, want) in [
            ("status >= 500 and latency_ms > 1000", j, &[][..], true),
            ("status >= 500 and latency_ms > 2000", j, &[], false),
            ("status == 503", j, &[], true),
            ("status != 503 or path == '/pay'", j, &[], true),
            ("not (status < 500)", j, &[], true),
            ("user.tier == \"gold\"", j, &[], true),
            ("user.tier == 'silver'", j, &[], false),
            // numbers as numbers: 503 > 1000 is false though "503" > "1000" as text
            ("status > 1000", j, &[], false),
            ("status > '1000'", j, &[], true),
            ("code == 42", j, &[], true),
            ("code == '42'", j, &[], false),
            ("ok == 'false'", j, &[], true),
            // missing, null, non-number against a number: false, also for !=
            ("missing == 1", j, &[], false),
            ("missing != 1", j, &[], false),
            ("not missing == 1", j, &[], true),
            ("n == 'null'", j, &[], false),
            ("path > 5", j, &[], false),
            ("user > 5", j, &[], false),
            // captures win over fields; plain lines have captures only
            ("status == 200", j, &[("status", "200")], true),
            ("ms > 1000", "GET /pay took 1500ms", &[("ms", "1500")], true),
            ("ms > 1000", "not json", &[], false),
            ("a == 1 or b == 2 and c == 3", "", &[("a", "1")], true),
            ("(a == 1 or b == 2) and c == 3", "", &[("a", "1")], false),
            ("x >= -1.5e1", "", &[("x", "-15")], true),
        ] {
            assert_eq!(eval(src, line, caps), want, "{src} on {line} with {caps:?}");
        }
    }

    #[test]
    fn parse_errors_say_what_and_where() {
        for (src, offset, needle) in [
            ("status = 500", 7, "=="),
            ("status >= ", 10, "to compare `status` with"),
            ("500 <= status", 0, "field name"),
            ("status >= 500 and", 17, "ends too early"),
            ("(status >= 500", 14, "`)`"),
            ("status >= 500)", 13, "the end"),
            ("status >= 'x", 10, "never closed"),
            ("status >= 5x", 10, "not a number"),
            ("a == 1 && b == 2", 7, "`and`"),
            ("status", 6, "comparison"),
            ("a. == 1", 0, "field name"),
        ] {
            let e = Where::parse(src).unwrap_err();
            assert_eq!(e.offset, offset, "{src}: {e:?}");
            assert!(e.message.contains(needle), "{src}: {e:?}");
        }
        assert_eq!(
            Where::parse("b == 1 and (a < 2 or b > 3)").unwrap().names(),
            ["b", "a"]
        );
    }
}
