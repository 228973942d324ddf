//! The value at a dotted path of a JSON line, at any nesting depth.
//!
//! Parsing a whole line into a `serde_json::Value` refuses anything nested deeper than 128
//! levels (serde_json's recursion limit, there to protect the stack), so a `field` rule used to
//! skip such lines without a word. Here the line is walked with a visitor that descends only
//! along the wanted path (as deep as the path is long) and skips everything else with
//! `IgnoredAny`, which serde_json skips with a loop, not recursion: a line nested a million
//! levels deep is judged like any other, in constant stack.
//!
//! What counts as JSON is what serde_json accepts: the whole line must be one valid document.
//! One difference from parsing into a `Value`: in a field nobody asked for, a number too large
//! for an `f64` or a string with an unpaired UTF-16 surrogate escape (`"\ud800"`) does not make
//! the line invalid (a value on the path with either is still refused). The value is taken as the `Value`-based lookup took it: strings as they
//! are, numbers and booleans as JSON writes them, `None` for a missing field, `null`, objects
//! and arrays; with a key written twice, the last one counts.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The text at `path` in the JSON document `body`; `Err` when `body` is not one JSON document
/// (or not UTF-8), `Ok(None)` when the path leads nowhere or to `null`, an object or an array.
pub fn field_text(body: &[u8], path: &[String]) -> Result<Option<String>, serde_json::Error> {
    let text = std::str::from_utf8(body).map_err(|_| {
        // serde_json would refuse it too: any valid JSON text is UTF-8.
        <serde_json::Error as de::Error>::custom("not UTF-8")
    })?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Lookup { path }.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Descends along `path`; at its end, takes the value's text.
struct Lookup<'p> {
    path: &'p [String],
}

impl<'de> DeserializeSeed<'de> for Lookup<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Lookup<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let mut found = None;
        while let Some(wanted) = map.next_key_seed(KeyIs(self.path.first()))? {
            if wanted {
                // A later copy of the key replaces an earlier one, as in a parsed map.
                found = map.next_value_seed(Lookup {
                    path: &self.path[1..],
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        Ok(self.path.is_empty().then(|| v.to_owned()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<String>, E> {
        Ok(self.path.is_empty().then(|| v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<String>, E> {
        Ok(self.path.is_empty().then(|| v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<String>, E> {
        Ok(self
            .path
            .is_empty()
            .then(|| serde_json::Number::from_f64(v).map(|n| n.to_string()))
            .flatten())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<String>, E> {
        Ok(self.path.is_empty().then(|| v.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
}

/// Whether an object key is the wanted one (compared without copying it).
struct KeyIs<'p>(Option<&'p String>);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(self.0.is_some_and(|k| k == v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_owned).collect()
    }

    /// The lookup this module replaces: parse into a `Value`, walk the path.
    fn through_value(body: &str, path: &[String]) -> Option<Option<String>> {
        let json: serde_json::Value = serde_json::from_str(body).ok()?;
        let mut v = &json;
        for key in path {
            match v.as_object().and_then(|o| o.get(key)) {
                Some(next) => v = next,
                None => return Some(None),
            }
        }
        Some(match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
    }

    #[test]
    fn like_a_parsed_value_on_ordinary_lines() {
        let lines = [
            r#"{"level":"error","msg":"x"}"#,
            r#"{"http":{"status":503},"level":"info"}"#,
            r#"{"http":{"status":5.0e2}}"#,
            r#"{"http":{"status":-7}}"#,
            r#"{"http":{"status":true}}"#,
            r#"{"http":{"status":null}}"#,
            r#"{"http":{"status":[1,2]}}"#,
            r#"{"http":{"status":{"a":1}}}"#,
            r#"{"http":[{"status":1}]}"#,
            r#"{"level":"a","level":"b"}"#,
            r#"{"http":{"status":1},"http":{"other":2}}"#,
            r#"{"le\u0076el":"esc\"aped\n"}"#,
            r#"{"level":"error""#,
            r#"{"level":"error"} trailing"#,
            r#"{"level":"error",}"#,
            r#"{"level":"\ud800"}"#,
            r#"{"level":"x","n":1e999,"s":"\ud800"}"#,
            r#"  {"level" : "spaced" }  "#,
            r#"[{"level":"error"}]"#,
            r#""level""#,
        ];
        for line in lines {
            for p in ["level", "http.status", "http"] {
                let got = field_text(line.as_bytes(), &path(p)).ok();
                let want = through_value(line, &path(p));
                if line.contains("1e999") || (line.contains("d800") && p != "level") {
                    // the documented difference: what no rule looks at cannot spoil the line
                    assert_eq!(want, None);
                    let want = (p == "level").then(|| "x".to_string());
                    assert_eq!(got, Some(want), "{line} at {p}");
                } else {
                    assert_eq!(got, want, "{line} at {p}");
                }
            }
        }
    }

    #[test]
    fn any_depth_is_judged() {
        for depth in [127, 128, 129, 1_000, 200_000] {
            let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let line = format!(r#"{{"payload":{deep},"level":"error"}}"#);
            assert_eq!(
                field_text(line.as_bytes(), &path("level")).unwrap(),
                Some("error".into()),
                "depth {depth}"
            );
            // a deep object on the path itself is walked just as far as the path goes
            let line = format!(r#"{{"a":{{"b":{deep}}},"a":{{"b":"x","c":{deep}}}}}"#);
            assert_eq!(
                field_text(line.as_bytes(), &path("a.b")).unwrap(),
                Some("x".into())
            );
            // and a broken deep line is still refused
            let broken = format!(r#"{{"payload":{deep}]}}"#);
            assert!(field_text(broken.as_bytes(), &path("level")).is_err());
        }
    }

    proptest! {
        #[test]
        fn like_a_parsed_value_on_generated_lines(
            doc in proptest::collection::vec(
                prop_oneof![
                    Just(r#""level":"error""#.to_string()),
                    Just(r#""level":5"#.to_string()),
                    Just(r#""http":{"status":503}"#.to_string()),
                    Just(r#""http":{"status":"5\u0030\u0033"}"#.to_string()),
                    Just(r#""http":[1,{"status":2}]"#.to_string()),
                    Just(r#""http":null"#.to_string()),
                    "[a-z]{1,3}".prop_map(|k| format!(r#""{k}":{{"level":"x"}}"#)),
                    "[a-z]{1,3}".prop_map(|k| format!(r#""{k}":[true,false,-1.5e3]"#)),
                ],
                0..6,
            ),
            broken in any::<bool>(),
        ) {
            let mut line = format!("{{{}}}", doc.join(","));
            if broken {
                line.pop();
            }
            for p in ["level", "http.status", "http"] {
                let got = field_text(line.as_bytes(), &path(p)).ok();
                prop_assert_eq!(got, through_value(&line, &path(p)));
            }
        }
    }
}
