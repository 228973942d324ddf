//! Personal data masked out of log text before it goes to DingTalk (`redact:`). Pure.
//!
//! Log lines go to a third-party chat, and China's PIPL makes personal data in them a
//! liability. So, unless turned off one by one, these are replaced in every quoted line, capture
//! value and group key, at render time (matching, grouping and counting still see the original
//! line; nothing here changes a count, and sizes are computed on the masked text):
//!
//! | built-in      | what                                                        | becomes    |
//! |---------------|-------------------------------------------------------------|------------|
//! | `mobile`      | mainland mobile numbers `1[3-9]` + 9 digits, `86`/`+86` too | `[mobile]` |
//! | `id_card`     | 18-digit resident ID (GB 11643: region, birth date, checksum) | `[id]`   |
//! | `bank_card`   | 13–19-digit card numbers of a known scheme passing Luhn, also written in groups of four | `[card]` |
//! | `email`       | e-mail addresses                                            | `[email]`  |
//! | `credentials` | `Bearer …`, JWTs, `password=…`-style pairs (`"token": "…"` too), AWS access key ids | `[secret]` |
//!
//! Numbers are only taken whole: a run of digits next to an ASCII letter, digit or `_` (a hex
//! hash, `v13812345678`) is left alone, so are numbers failing their check (an 18-digit number
//! with a wrong checksum or birth date, a 16-digit number failing Luhn), timestamps, ports and
//! order ids of other lengths or prefixes. A CJK character next to a number does not protect it
//! (`手机13812345678` is masked).
//!
//! User patterns (`redact.patterns`) run first, in order, each regex replaced by its `replace`
//! text (`$1`, `$name` refer to groups; default `[NAME]`). A quoted line that was cut at the size
//! limit has a trailing run of 6 or more digits (what could be the start of a number the cut
//! hid from the checks) masked as `[cut]`.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, LazyLock};

use regex::Regex;

/// The built-in detectors, each of which may be turned off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtins {
    /// Mainland mobile numbers.
    pub mobile: bool,
    /// 18-digit resident ID numbers with a valid checksum.
    pub id_card: bool,
    /// Bank card numbers passing Luhn.
    pub bank_card: bool,
    /// E-mail addresses.
    pub email: bool,
    /// Bearer tokens, JWTs, `password=` pairs, AWS access key ids.
    pub credentials: bool,
}

impl Default for Builtins {
    /// All on: personal data stays home unless the operator says otherwise.
    fn default() -> Builtins {
        Builtins {
            mobile: true,
            id_card: true,
            bank_card: true,
            email: true,
            credentials: true,
        }
    }
}

impl Builtins {
    /// The names accepted under `redact.builtins`.
    pub const NAMES: [&'static str; 5] = ["mobile", "id_card", "bank_card", "email", "credentials"];

    /// The switch named `name` (one of [`Builtins::NAMES`]).
    pub fn switch(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "mobile" => &mut self.mobile,
            "id_card" => &mut self.id_card,
            "bank_card" => &mut self.bank_card,
            "email" => &mut self.email,
            "credentials" => &mut self.credentials,
            _ => return None,
        })
    }
}

/// One user pattern of `redact.patterns`.
#[derive(Debug, Clone)]
pub struct UserPattern {
    /// Its name, for messages and the default replacement `[name]`.
    pub name: String,
    /// What to mask.
    pub regex: Regex,
    /// What it becomes (`$1`/`$name` expand to groups).
    pub replace: String,
}

/// What to mask: the checked `redact:` section. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Pii {
    inner: Arc<PiiSpec>,
}

#[derive(Debug, Default)]
struct PiiSpec {
    builtins: Builtins,
    patterns: Vec<UserPattern>,
}

impl fmt::Debug for Pii {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pii")
            .field("builtins", &self.inner.builtins)
            .field(
                "patterns",
                &self
                    .inner
                    .patterns
                    .iter()
                    .map(|p| &p.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PartialEq for Pii {
    fn eq(&self, other: &Pii) -> bool {
        let (a, b) = (&self.inner, &other.inner);
        a.builtins == b.builtins
            && a.patterns.len() == b.patterns.len()
            && a.patterns.iter().zip(&b.patterns).all(|(x, y)| {
                x.name == y.name && x.regex.as_str() == y.regex.as_str() && x.replace == y.replace
            })
    }
}

impl Eq for Pii {}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}").unwrap()
});
static BEARER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{8,}").unwrap());
static JWT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*").unwrap()
});
/// `password=x`, `db_password: x`, `"token": "x"`, `secret_access_key=x`: the key and separator
/// stay, the value goes.
static PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)([A-Za-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key)"?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&,;"'}]+)"#,
    )
    .unwrap()
});
static AWS_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b").unwrap());
/// Card numbers written in groups of four (`6222 0212 3456 7890`).
static GROUPED_CARD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d{4}(?:[ \-]\d{4}){2,3}(?:[ \-]\d{1,4})?").unwrap());
/// Candidate numbers: digit runs, an ID's final `X`, a `+86` in front.
static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\+?[0-9]+[Xx]?").unwrap());

impl Pii {
    /// A masker with these switches and user patterns (in order).
    pub fn new(builtins: Builtins, patterns: Vec<UserPattern>) -> Pii {
        Pii {
            inner: Arc::new(PiiSpec { builtins, patterns }),
        }
    }

    /// Nothing masked at all.
    pub fn off() -> Pii {
        Pii::new(
            Builtins {
                mobile: false,
                id_card: false,
                bank_card: false,
                email: false,
                credentials: false,
            },
            Vec::new(),
        )
    }

    /// The switches.
    pub fn builtins(&self) -> Builtins {
        self.inner.builtins
    }

    /// `text` with personal data and credentials replaced (see the module docs).
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let spec = &*self.inner;
        let b = spec.builtins;
        let mut out = Cow::Borrowed(text);
        for p in &spec.patterns {
            replace(&mut out, &p.regex, p.replace.as_str());
        }
        if b.credentials {
            replace(&mut out, &JWT, "[secret]");
            replace(&mut out, &BEARER, "$1 [secret]");
            replace(&mut out, &PAIR, "${1}[secret]");
            replace(&mut out, &AWS_KEY, "[secret]");
        }
        if b.email && out.contains('@') {
            replace(&mut out, &EMAIL, "[email]");
        }
        if b.bank_card {
            let masked = replace_whole(&out, &GROUPED_CARD, |m| {
                let digits: String = m.chars().filter(char::is_ascii_digit).collect();
                is_card(&digits).then_some("[card]")
            });
            if let Cow::Owned(s) = masked {
                out = Cow::Owned(s);
            }
        }
        if b.mobile || b.id_card || b.bank_card {
            let masked = replace_whole(&out, &NUMBER, |m| classify(m, b));
            if let Cow::Owned(s) = masked {
                out = Cow::Owned(s);
            }
        }
        out
    }

    /// [`Pii::mask`] for a line that was cut at the size limit: a trailing run of 6 or more
    /// digits, possibly a number the cut hid from the checks, is masked as `[cut]`.
    pub fn mask_cut<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let b = self.inner.builtins;
        let mut out = self.mask(text);
        if b.mobile || b.id_card || b.bank_card {
            let tail = out.len()
                - out
                    .bytes()
                    .rev()
                    .take_while(|c| c.is_ascii_digit() || *c == b' ' || *c == b'-')
                    .count();
            let tail = tail
                + out[tail..]
                    .bytes()
                    .take_while(|c| !c.is_ascii_digit())
                    .count();
            let run = &out[tail..];
            if run.bytes().filter(u8::is_ascii_digit).count() >= 6 {
                let mut s = out[..tail].to_owned();
                s.push_str("[cut]");
                out = Cow::Owned(s);
            }
        }
        out
    }
}

fn replace(text: &mut Cow<'_, str>, re: &Regex, with: &str) {
    if let Cow::Owned(s) = re.replace_all(text, with) {
        *text = Cow::Owned(s);
    }
}

/// Replaces matches of `re` that stand alone (no ASCII letter, digit or `_` on either side) and
/// for which `label` gives a replacement.
fn replace_whole<'t>(
    text: &'t str,
    re: &Regex,
    label: impl Fn(&str) -> Option<&'static str>,
) -> Cow<'t, str> {
    let bytes = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = String::new();
    let mut last = 0;
    for m in re.find_iter(text) {
        let before = m.start().checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(m.end()).copied();
        if before.is_some_and(word) || after.is_some_and(word) {
            continue;
        }
        if let Some(l) = label(m.as_str()) {
            out.push_str(&text[last..m.start()]);
            out.push_str(l);
            last = m.end();
        }
    }
    if last == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// What a whole number is, if it is personal data we mask.
fn classify(m: &str, b: Builtins) -> Option<&'static str> {
    let plus = m.starts_with('+');
    let n = m.trim_start_matches('+');
    if b.id_card && !plus && is_resident_id(n) {
        return Some("[id]");
    }
    if n.ends_with(['X', 'x']) {
        return None;
    }
    if b.mobile && (is_mobile(n) || (n.len() == 13 && n.starts_with("86") && is_mobile(&n[2..]))) {
        return Some("[mobile]");
    }
    if b.bank_card && !plus && is_card(n) {
        return Some("[card]");
    }
    None
}

/// A mainland mobile number: 11 digits, `1[3-9]…`.
pub fn is_mobile(n: &str) -> bool {
    n.len() == 11 && n.bytes().all(|c| c.is_ascii_digit()) && {
        let b = n.as_bytes();
        b[0] == b'1' && (b'3'..=b'9').contains(&b[1])
    }
}

/// An 18-character resident ID number (GB 11643-1999): a province code, a real birth date
/// (1900–2099) and the ISO 7064 MOD 11-2 check character.
pub fn is_resident_id(n: &str) -> bool {
    let b = n.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| n[r].parse::<u32>().unwrap_or(0);
    const PROVINCES: [u32; 34] = [
        11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51,
        52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
    ];
    if !PROVINCES.contains(&num(0..2)) {
        return false;
    }
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if !(1900..=2099).contains(&year) || day == 0 || day > days {
        return false;
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize];
    b[17].to_ascii_uppercase() == check
}

/// A payment card number: 13–19 digits, the prefix and length of a known scheme (UnionPay,
/// Visa, Mastercard, Amex, JCB, Discover, Diners), and the Luhn check. The scheme check keeps
/// long order ids and snowflake ids (which pass Luhn one time in ten) from being masked.
pub fn is_card(n: &str) -> bool {
    let len = n.len();
    if !(13..=19).contains(&len) || !n.bytes().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let p = |k: usize| n[..k].parse::<u32>().unwrap_or(0);
    let scheme = match len {
        13 => p(1) == 4,
        14 => p(2) == 36 || (300..=305).contains(&p(3)),
        15 => p(2) == 34 || p(2) == 37,
        16 => {
            p(1) == 4
                || (51..=55).contains(&p(2))
                || (2221..=2720).contains(&p(4))
                || p(2) == 62
                || (3528..=3589).contains(&p(4))
                || p(4) == 6011
                || p(2) == 65
                || (644..=649).contains(&p(3))
        }
        _ => {
            p(2) == 62
                || (len == 19 && p(1) == 4)
                || (3528..=3589).contains(&p(4))
                || p(4) == 6011
                || p(2) == 65
        }
    };
    scheme && luhn(n)
}

/// The Luhn (mod 10) check of a string of ASCII digits.
pub fn luhn(n: &str) -> bool {
    let sum: u32 = n
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(text: &str) -> String {
        Pii::default().mask(text).into_owned()
    }

    #[test]
    fn personal_data_is_masked() {
        for (input, want) in [
            ("call 13812345678 now", "call [mobile] now"),
            ("手机13912345678，", "手机[mobile]，"),
            ("tel=+8613812345678", "tel=[mobile]"),
            ("tel: +86 19912345678", "tel: +86 [mobile]"),
            ("phone:8615012345678;", "phone:[mobile];"),
            ("id=11010519491231002X ok", "id=[id] ok"),
            ("id=11010519491231002x", "id=[id]"),
            ("身份证440306199003071232", "身份证[id]"),
            ("leap 310115200002294567.", "leap [id]."),
            ("card 6222021234567894 paid", "card [card] paid"),
            ("card 6222 0212 3456 7894 paid", "card [card] paid"),
            ("card 6222-0212-3456-7894", "card [card]"),
            ("visa 4111111111111111", "visa [card]"),
            ("up 6217001234567890122", "up [card]"),
            ("amex 378282246310005", "amex [card]"),
            ("from a.b+c@mail.example.com:", "from [email]:"),
            ("<zhang.san@qq.com>", "<[email]>"),
            (
                "Authorization: Bearer abcDEF123456.xyz",
                "Authorization: Bearer [secret]",
            ),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_nature-x done",
                "jwt [secret] done",
            ),
            (
                "login password=hunter2&user=a",
                "login password=[secret]&user=a",
            ),
            (
                r#"{"password": "p a s s", "u": 1}"#,
                r#"{"password": [secret], "u": 1}"#,
            ),
            ("db_password: s3cr3t", "db_password: [secret]"),
            ("access_token=abc.def", "access_token=[secret]"),
            (
                "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG",
                "aws_secret_access_key=[secret]",
            ),
            ("key AKIAIOSFODNN7EXAMPLE used", "key [secret] used"),
        ] {
            assert_eq!(on(input), want, "{input}");
        }
    }

    #[test]
    fn ordinary_text_and_near_misses_are_left_alone() {
        for input in [
            // Wrong ID checksum, bad birth date, unknown province.
            "id=110105194912310021",
            "id=110105194913310027",
            "id=990105194912310021",
            // Card numbers failing Luhn, or of no scheme (order ids).
            "card 6222021234567895",
            "card 4111111111111112",
            "order 1234567890123456",
            "order 1867412345678901234",
            // Timestamps, ports, ids, versions, hashes, IPs.
            "ts=1732870000 ms=1732870000123 port 8080",
            "took 12345678901ms",
            "sha 9f86d08818812345678d15d6c15b0f00a08",
            "v13812345678 13812345678a 138123456789",
            "10.0.0.5:443 GET /api/v1/users/42",
            "at user@host: no tld",
            "tokens: 5, max_tokens=500",
            "bearer of news",
            "2026-11-29 10:44:54",
        ] {
            assert_eq!(on(input), input);
        }
    }

    #[test]
    fn builtins_turn_off_and_user_patterns_come_first() {
        let p = Pii::new(
            Builtins {
                mobile: false,
                ..Builtins::default()
            },
            vec![UserPattern {
                name: "uid".into(),
                regex: Regex::new(r"uid=(\d)\d+").unwrap(),
                replace: "uid=${1}***".into(),
            }],
        );
        assert_eq!(
            p.mask("uid=13812345678 13812345678 a@b.cn"),
            "uid=1*** 13812345678 [email]"
        );
        assert_eq!(Pii::off().mask("13812345678 a@b.cn"), "13812345678 a@b.cn");
        assert!(matches!(
            Pii::default().mask("nothing here"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_cut_line_loses_a_trailing_partial_number() {
        let p = Pii::default();
        assert_eq!(p.mask_cut("user 1381234"), "user [cut]");
        assert_eq!(p.mask_cut("card 6222 0212 34"), "card [cut]");
        assert_eq!(p.mask_cut("port 8080"), "port 8080");
        assert_eq!(Pii::off().mask_cut("user 1381234"), "user 1381234");
    }

    #[test]
    fn luhn_and_checksum_helpers() {
        assert!(luhn("79927398713") && !luhn("79927398710"));
        assert!(is_resident_id("11010519491231002X"));
        assert!(!is_resident_id("11010519491231002"));
        assert!(is_mobile("19912345678") && !is_mobile("12012345678"));
    }
}
