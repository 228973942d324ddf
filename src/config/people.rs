//! `people:`: named groups of people to mention, used by rules, routes and `escalate:`.
//!
//! ```yaml
//! people:
//!   dba: { mobiles: ["13800000001", "13800000002"] }
//!   sre: { user_ids: ["manager1234"] }
//! rules:
//!   - name: db-errors
//!     match: 'ORA-\d+'
//!     mention: dba                 # a group, a list of groups, or people written out
//! ```
//!
//! Wherever a `mention:` is written it may be a group's name, a list of names, or the people
//! themselves (`{ mobiles: [...], user_ids: [...], all: true }`); `check` names a group that
//! does not exist, with the groups that do.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Checker, RawMention, check_mention, quoted};
use crate::style::{MAX_MENTIONS, Mention};

/// The checked `people:` groups, by name.
pub(super) type People = BTreeMap<String, Mention>;

/// A `mention:` as written: group name(s), or people.
#[derive(Debug)]
pub(super) enum RawMentionRef {
    /// `mention: dba` or `mention: [dba, sre]`.
    Names(Vec<String>),
    /// `mention: { mobiles: [...] }`.
    Inline(RawMention),
}

impl<'de> Deserialize<'de> for RawMentionRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawMentionRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a people group's name, a list of names, or {mobiles, user_ids, all}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawMentionRef, E> {
                Ok(RawMentionRef::Names(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawMentionRef, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<String>()? {
                    out.push(v);
                }
                Ok(RawMentionRef::Names(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawMentionRef, A::Error> {
                RawMention::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawMentionRef::Inline)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Checks `people:`: each group as a `mention:` is checked; a name is one word.
pub(super) fn check_people(c: &mut Checker, raw: &BTreeMap<String, Spanned<RawMention>>) -> People {
    let mut out = People::new();
    for (name, group) in raw {
        let ctx = format!("people '{name}'");
        if name.trim().is_empty() || name.contains(char::is_whitespace) {
            c.problem(group, &ctx, "a group's name is one word");
            continue;
        }
        let m = check_mention(c, group, &ctx);
        if m.is_empty() {
            c.problem(group, &ctx, "names nobody: give mobiles, user_ids or all");
        }
        out.insert(name.clone(), m);
    }
    out
}

/// Resolves a `mention:` against `people` (the groups named, merged in order), naming unknown
/// groups and too many people in `context`.
pub(super) fn resolve(
    c: &mut Checker,
    people: &People,
    raw: &Spanned<RawMentionRef>,
    context: &str,
) -> Mention {
    match &raw.value {
        RawMentionRef::Inline(m) => {
            let at = Spanned {
                value: RawMention {
                    mobiles: m.mobiles.clone(),
                    user_ids: m.user_ids.clone(),
                    all: m.all,
                },
                referenced: raw.referenced,
                defined: raw.defined,
            };
            check_mention(c, &at, context)
        }
        RawMentionRef::Names(names) => {
            let mut out = Mention::default();
            if names.is_empty() {
                c.problem(raw, context, "names no people group");
            }
            let mut wanted = 0;
            for n in names {
                match people.get(n.trim()) {
                    Some(m) => {
                        wanted += m.people();
                        out.absorb(m);
                    }
                    None => {
                        let known = if people.is_empty() {
                            "no groups are defined under `people:`".to_owned()
                        } else {
                            let all: Vec<&str> = people.keys().map(String::as_str).collect();
                            format!("groups are: {}", all.join(", "))
                        };
                        c.problem(
                            raw,
                            context,
                            format!("unknown people group {} ({known})", quoted(n)),
                        );
                    }
                }
            }
            if wanted > MAX_MENTIONS && out.people() == MAX_MENTIONS {
                c.problem(
                    raw,
                    context,
                    format!(
                        "these groups name more than {MAX_MENTIONS} people; DingTalk mentions at most {MAX_MENTIONS} in one message"
                    ),
                );
            }
            out
        }
    }
}
