//! Lines → templates: the variable parts of a log line masked, so lines of the same shape give
//! one template (in the spirit of the Drain log parser's preprocessing, without its tree: a
//! template is a pure function of its line, so it can be remembered across restarts and compared
//! by equality).
//!
//! What is masked, in this order at each position of the line (the first kind that fits wins):
//!
//! | kind | example | becomes |
//! |---|---|---|
//! | URLs | `https://api.example.com/v1/pay?id=7` | `<URL>` |
//! | timestamps | `2026-11-29T10:44:54.123+08:00`, `Nov 29 10:44:54`, `[29/Nov/2026:10:44:54 +0800]`, `10:44:54,123` | `<TIME>` |
//! | UUIDs | `60f50a9d-827b-4fc8-b8c7-dc0bbe15c936` | `<UUID>` |
//! | IPv4, with a port | `10.251.126.255:50010` | `<IP>` |
//! | IPv6 | `fe80::1ff:fe23:4567:890a`, `::1` | `<IP>` |
//! | host names with a port | `proxy.cse.cuhk.edu.hk:5070` | `<HOST>` |
//! | paths of two parts or more | `/var/run/mDNSResponder`, `C:\Windows\Temp` | `<PATH>` |
//! | quoted values | `"bob"`, `'x.conf'` | `"<*>"` (a quoted phrase keeps its words, masked inside; a JSON key stays) |
//! | hex | `0x800f0805`, `f7b8d1f1d4d44643b07fa10ca7d021fb` | `<HEX>` |
//! | numbers | `42`, `-3`, `30002312` | `<NUM>` |
//! | words with a digit | `blk_-1851265222873801714`, `R25-M1-NF-C`, `dn142` | `<*>` |
//!
//! Then a run of the same mask (`<NUM> <NUM> <NUM>`, `<*>, <*>`) becomes one, so a list of any
//! length gives one template; runs of blanks become one space. A multi-line event (a stack
//! trace) is known by its first line. Only the first [`MAX_INPUT_BYTES`] of a line are looked at
//! and a template is at most [`MAX_TEMPLATE_BYTES`] (cut on a character boundary, ending in
//! `…`), which bounds the memory of every template kept.

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Bytes of a line reduced: a longer line is known by its start.
pub const MAX_INPUT_BYTES: usize = 2048;

/// Longest template, in bytes (a cut one ends in `…`, within this).
pub const MAX_TEMPLATE_BYTES: usize = 240;

/// Every mask, one alternative each, in the order they are tried at a position.
static MASKS: LazyLock<Regex> = LazyLock::new(|| {
    let month = "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*";
    let day = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*";
    let hms = r"\d{1,2}:\d\d:\d\d(?:[.,:]\d+)?";
    let zone = r"(?:\s?(?:Z|[+-]\d\d:?\d\d|UTC|GMT))?";
    let hex4 = "[0-9A-Fa-f]{1,4}";
    let alternatives = [
        // URLs: scheme, then anything up to a blank or a quote
        r"(?P<url>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\x22'<>]+)".to_owned(),
        // timestamps: ISO 8601 (date, optional time), syslog, Apache/nginx, a bare time
        format!(
            r"(?P<time>\b\d{{4}}[-/.]\d\d[-/.]\d\d(?:[T\s_-]+{hms})?{zone}\b|\b(?:{day},?\s+)?{month}\s+\d{{1,2}},?\s+(?:\d{{4}}\s+)?{hms}(?:\s+\d{{4}}\b)?{zone}|\b\d{{1,2}}/{month}/\d{{4}}:{hms}(?:\s[+-]\d{{4}})?|\b{hms}{zone}\b)"
        ),
        r"(?P<uuid>\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b)"
            .to_owned(),
        r"(?P<ip4>\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b)".to_owned(),
        // IPv6: the full form, or a compressed one (`::`); checked again below
        format!(
            r"(?P<ip6>(?:{hex4}:){{7}}{hex4}\b|(?:\b{hex4}(?::{hex4}){{0,6}})?::(?:{hex4}(?::{hex4}){{0,6}}\b)?)"
        ),
        r"(?P<host>\b[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)+:\d{1,5}\b)".to_owned(),
        r"(?P<path>(?:\b[A-Za-z]:|~|\.{1,2})?(?:[\\/][\w.$@+~-]+){2,}[\\/]?)".to_owned(),
        // quoted: the character before the quote is kept (group `pre`); `key` catches a JSON key
        r#"(?P<dq>"(?P<dqin>[^"]{0,1000})"(?P<key>\s*:)?)"#.to_owned(),
        r"(?P<sq>(?P<pre>^|[\s=(\[{:,])'(?P<sqin>[^']{0,1000})')".to_owned(),
        r"(?P<hex>\b0[xX][0-9A-Fa-f]+\b)".to_owned(),
        // a word with a digit in it: a number, a hex string, an id (ASCII words only, so a
        // CJK word next to a number keeps its text)
        r"(?P<word>[A-Za-z0-9_-]*\d[A-Za-z0-9_-]*)".to_owned(),
    ];
    Regex::new(&alternatives.join("|")).expect("the masks compile")
});

/// The template of a line (or of a multi-line event: of its first line). Pure: the same line
/// always gives the same template.
pub fn reduce(line: &[u8]) -> String {
    let first = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let head = &first[..first.len().min(MAX_INPUT_BYTES)];
    let text = String::from_utf8_lossy(head);
    cut(collapse(&mask(&text)))
}

/// Masks the variable parts of `text` (see the module docs).
fn mask(text: &str) -> String {
    MASKS
        .replace_all(text, |c: &Captures| masked(c))
        .into_owned()
}

fn masked(c: &Captures) -> String {
    let whole = c.get(0).map_or("", |m| m.as_str());
    let named = |n: &str| c.name(n).map(|m| m.as_str());
    if named("url").is_some() {
        "<URL>".into()
    } else if named("time").is_some() {
        "<TIME>".into()
    } else if named("uuid").is_some() {
        "<UUID>".into()
    } else if named("ip4").is_some() {
        "<IP>".into()
    } else if let Some(ip) = named("ip6") {
        // `std::string`, `a::b`: C++ and Rust paths are not addresses; one needs a digit and
        // at least three parts, or to be `::` with a digit (`::1`).
        let parts = ip.split(':').filter(|p| !p.is_empty()).count();
        if ip.chars().any(|ch| ch.is_ascii_digit()) && (parts >= 3 || ip.starts_with("::")) {
            "<IP>".into()
        } else {
            // not an address: its words are masked on their own
            (ip.split(':'))
                .map(|part| {
                    if part.chars().any(|ch| ch.is_ascii_digit()) {
                        word_mask(part)
                    } else {
                        part.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(":")
        }
    } else if named("host").is_some() {
        "<HOST>".into()
    } else if named("path").is_some() {
        "<PATH>".into()
    } else if named("dq").is_some() {
        let inner = named("dqin").unwrap_or("");
        if let Some(colon) = named("key") {
            // a JSON key (`"level":`) is the line's shape, not a value
            format!("\"{inner}\"{colon}")
        } else if inner.contains(char::is_whitespace) {
            // a quoted phrase is what the line says: its words stay, its values are masked
            format!("\"{}\"", mask(inner))
        } else {
            "\"<*>\"".into()
        }
    } else if named("sq").is_some() {
        let pre = named("pre").unwrap_or("");
        let inner = named("sqin").unwrap_or("");
        if inner.contains(char::is_whitespace) {
            format!("{pre}'{}'", mask(inner))
        } else {
            format!("{pre}'<*>'")
        }
    } else if named("hex").is_some() {
        "<HEX>".into()
    } else if let Some(word) = named("word") {
        word_mask(word)
    } else {
        whole.to_owned()
    }
}

/// A UUID inside a word (`req-60f50a9d-…`).
static UUID_IN_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new("[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
        .expect("the UUID regex compiles")
});

/// A word with a digit: a number, a long hex string, a word around a UUID (`req-<UUID>`), or
/// an id.
fn word_mask(word: &str) -> String {
    let number = word.strip_prefix('-').unwrap_or(word);
    if !number.is_empty() && number.chars().all(|ch| ch.is_ascii_digit() || ch == '.') {
        return "<NUM>".into();
    }
    if word.len() >= 8 && word.chars().all(|ch| ch.is_ascii_hexdigit()) {
        return "<HEX>".into();
    }
    let around = UUID_IN_WORD.replace_all(word, "<UUID>");
    if around.len() != word.len() && !around.chars().any(|ch| ch.is_ascii_digit()) {
        return around.into_owned();
    }
    "<*>".into()
}

/// Words joined by one space; a run of the same mask (`<NUM> <NUM>`, `<*>, <*>,`) is one.
fn collapse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last: Option<&str> = None;
    for word in text.split_whitespace() {
        let core = word.trim_end_matches([',', ';']);
        let masked = core.len() > 2 && core.starts_with('<') && core.ends_with('>');
        if masked && last == Some(core) {
            continue;
        }
        last = masked.then_some(core);
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// At most [`MAX_TEMPLATE_BYTES`], cut on a character boundary with `…`.
fn cut(mut text: String) -> String {
    if text.len() <= MAX_TEMPLATE_BYTES {
        return text;
    }
    let mut end = MAX_TEMPLATE_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real-looking lines (most from the Loghub samples) and their templates.
    #[test]
    fn lines_become_their_templates() {
        let table = [
            (
                "2015-10-18 18:06:30,092 WARN [LeaseRenewer:msrabi@msra-sa-41:9000] org.apache.hadoop.hdfs.LeaseRenewer: Failed to renew lease for [DFSClient_NONMAPREDUCE_1537864556_1] for 92 seconds.  Will retry shortly ...",
                "<TIME> WARN [LeaseRenewer:msrabi@<*>:<NUM>] org.apache.hadoop.hdfs.LeaseRenewer: Failed to renew lease for [<*>] for <NUM> seconds. Will retry shortly ...",
            ),
            (
                "081110 133946 11947 WARN dfs.DataNode$DataXceiver: 10.251.126.255:50010:Got exception while serving blk_1910039736720341651 to /10.251.31.85:",
                "<NUM> WARN dfs.DataNode$DataXceiver: <IP>:Got exception while serving <*> to /<IP>:",
            ),
            (
                "[Sun Dec 04 06:46:33 2005] [error] mod_jk child workerEnv in error state 8",
                "[<TIME>] [error] mod_jk child workerEnv in error state <NUM>",
            ),
            (
                "Dec 10 08:33:29 LabSZ sshd[24389]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=103.207.39.212 ",
                "<TIME> LabSZ sshd[<NUM>]: pam_unix(sshd:auth): authentication failure; logname= uid=<NUM> euid=<NUM> tty=ssh ruser= rhost=<IP>",
            ),
            (
                "nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:04:29.480 25746 INFO nova.api.openstack.wsgi [req-60f50a9d-827b-4fc8-b8c7-dc0bbe15c936 f7b8d1f1d4d44643b07fa10ca7d021fb e9746973ac574c6b8a9e8857f56a7608 - - -] HTTP exception thrown: No instances found for any event",
                "nova-api.log.<NUM>.<TIME> <TIME> <NUM> INFO nova.api.openstack.wsgi [req-<UUID> <HEX> - - -] HTTP exception thrown: No instances found for any event",
            ),
            (
                "2016-09-28 04:30:33, Info                  CBS    Failed to internally open package. [HRESULT = 0x800f0805 - CBS_E_INVALID_PACKAGE]",
                "<TIME>, Info CBS Failed to internally open package. [HRESULT = <HEX> - CBS_E_INVALID_PACKAGE]",
            ),
            (
                "Jul  4 23:10:40 calvisitor-10-105-162-105 com.apple.AddressBook.InternetAccountsBridge[35382]: dnssd_clientstub ConnectToServer: connect() failed path:/var/run/mDNSResponder Socket:4 Err:-1 Errno:1 Operation not permitted",
                "<TIME> <*> com.apple.AddressBook.InternetAccountsBridge[<NUM>]: dnssd_clientstub ConnectToServer: connect() failed path:<PATH> Socket:<NUM> Err:<NUM> Errno:<NUM> Operation not permitted",
            ),
            (
                "[07.26 21:29:27] chrome.exe *64 - mtalk.google.com:5228 error : Could not connect through proxy proxy.cse.cuhk.edu.hk:5070 - Proxy server cannot establish a connection with the target, status code 403",
                "[<NUM>.<NUM> <TIME>] chrome.exe *<NUM> - <HOST> error : Could not connect through proxy <HOST> - Proxy server cannot establish a connection with the target, status code <NUM>",
            ),
            (
                "- 1131567054 2005.11.09 tbird-admin1 Nov 9 12:10:54 local@tbird-admin1 gmetad: Warning: we failed to resolve data source name dn142 dn143 dn144 dn145",
                "- <NUM> <TIME> <*> <TIME> local@<*> gmetad: Warning: we failed to resolve data source name <*>",
            ),
            (
                r#"{"ts":"2026-11-29T10:44:54Z","level":"error","msg":"payment 7781 failed after 3 retries","user":"bob"}"#,
                r#"{"ts":"<*>","level":"<*>","msg":"payment <NUM> failed after <NUM> retries","user":"<*>"}"#,
            ),
            (
                "ERROR user 'alice' cannot open '/etc/app/x.conf': permission denied (uid=1001)",
                "ERROR user '<*>' cannot open '<*>': permission denied (uid=<NUM>)",
            ),
            (
                "2026-11-29 10:44:54 ERROR upstream https://pay.example.com/v1/charge?id=7 timed out after 30s from fe80::1ff:fe23:4567:890a",
                "<TIME> ERROR upstream <URL> timed out after <*> from <IP>",
            ),
            (
                "panic in std::collections::HashMap at C:\\Windows\\Temp\\a.dmp: 错误123",
                "panic in std::collections::HashMap at <PATH>: 错误<NUM>",
            ),
            (
                "10.2.7.201 - - [29/Nov/2026:10:44:54 +0800] \"GET /api/pay HTTP/1.1\" 502 324",
                "<IP> - - [<TIME>] \"GET <PATH> HTTP/<NUM>.<NUM>\" <NUM>",
            ),
            (
                "Exception in thread \"main\" java.lang.NullPointerException\n\tat com.example.Main.run(Main.java:42)",
                "Exception in thread \"<*>\" java.lang.NullPointerException",
            ),
        ];
        let wrong: Vec<String> = (table.iter())
            .filter(|(line, want)| reduce(line.as_bytes()) != *want)
            .map(|(line, want)| {
                format!(
                    "\n{line}\n  got  {}\n  want {want}",
                    reduce(line.as_bytes())
                )
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.concat());
    }

    #[test]
    fn lines_of_one_shape_share_a_template_and_other_shapes_do_not() {
        let a =
            reduce(b"2026-11-29 10:44:54 ERROR db 10.0.0.5:5432 timeout after 3000 ms (conn 17)");
        let b =
            reduce(b"2026-11-30 01:02:03 ERROR db 10.0.0.9:5433 timeout after 12 ms (conn 4411)");
        let c = reduce(b"2026-11-30 01:02:03 ERROR db 10.0.0.9:5433 refused (conn 4411)");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn templates_are_bounded_and_never_split_a_character() {
        let long = "错".repeat(5000);
        let t = reduce(long.as_bytes());
        assert!(t.len() <= MAX_TEMPLATE_BYTES, "{}", t.len());
        assert!(t.ends_with('…'));
        let bytes = [b'E', 0xff, 0xfe, b' ', b'1'];
        assert_eq!(reduce(&bytes), "E\u{fffd}\u{fffd} <NUM>");
        assert_eq!(reduce(b""), "");
    }
}
