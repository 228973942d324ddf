//! Runtime silences, like Alertmanager's: `dingtail silence add --rule R [--group K=V] --for 2h
//! --comment "db migration"`, `list`, `expire ID`.
//!
//! A silence names a rule (and optionally one `group_by` value, `KEY=VALUE`) and an end time.
//! While it lasts, the rule's alerts (of that group) are not sent; their hits are counted (summary,
//! `dingtail_silenced_hits_total`) and the first message after it says `while silenced: ×N`.
//!
//! Silences live in `silences.json` in the state directory (written whole, atomically), so they
//! survive restarts; a running instance serves them over its listener (`/api/silences`), and the
//! `silence` commands talk to it there, or, when none answers, edit the file (the instance reads
//! it at start). Expired silences are dropped when the set is next written.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};

use crate::timezone::Zone;

/// The file in the state directory.
pub const FILE_NAME: &str = "silences.json";

/// One silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Short id for `expire`.
    pub id: String,
    /// The rule it silences.
    pub rule: String,
    /// `KEY=VALUE`: only the group with this `group_by` value; `None`: the whole rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Unix seconds when it ends.
    pub ends_at: u64,
    /// Why (shown by `list`).
    #[serde(default)]
    pub comment: String,
}

impl Silence {
    /// Whether it silences an alert of `rule` with group key `group` (`ip=1.2.3.4 user=root`).
    pub fn covers(&self, rule: &str, group: Option<&str>) -> bool {
        self.rule == rule
            && match &self.group {
                None => true,
                Some(want) => group.is_some_and(|g| g.split(' ').any(|kv| kv == want)),
            }
    }

    /// Whether it still lasts at `now`.
    pub fn active(&self, now: SystemTime) -> bool {
        unix(now) < self.ends_at
    }
}

/// What `silence add` asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewSilence {
    /// The rule.
    pub rule: String,
    /// `KEY=VALUE`, optional.
    #[serde(default)]
    pub group: Option<String>,
    /// How long, in seconds.
    pub seconds: u64,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a silence could not be added or expired.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// `--group` is not `KEY=VALUE`.
    #[error("--group must be KEY=VALUE, got `{0}`")]
    BadGroup(String),
    /// No rule name.
    #[error("--rule must name a rule")]
    NoRule,
    /// No such silence.
    #[error("no silence with id `{0}`")]
    Unknown(String),
    /// The file could not be read or written.
    #[error("silences file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a list of silences.
    #[error("silences file {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: serde_json::Error,
    },
}

/// The silences, shared by the listener (which changes them) and the aggregator task (which
/// reads them), written to the state directory on every change.
#[derive(Debug, Clone, Default)]
pub struct Silences {
    inner: Arc<Mutex<Vec<Silence>>>,
    file: Option<PathBuf>,
}

impl Silences {
    /// The silences of the state directory `dir` (none when the file does not exist yet);
    /// `None`: kept in memory only.
    pub fn open(dir: Option<&Path>) -> Result<Silences, SilenceError> {
        let file = dir.map(|d| d.join(FILE_NAME));
        let list = match &file {
            Some(f) => read(f)?,
            None => Vec::new(),
        };
        Ok(Silences {
            inner: Arc::new(Mutex::new(list)),
            file,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Silence>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The silences lasting at `now`, soonest end first.
    pub fn list(&self, now: SystemTime) -> Vec<Silence> {
        let mut list: Vec<Silence> = self
            .lock()
            .iter()
            .filter(|s| s.active(now))
            .cloned()
            .collect();
        list.sort_by_key(|s| s.ends_at);
        list
    }

    /// The silence covering an alert of `rule` (group `group`) at `now`, if any.
    pub fn covering(&self, rule: &str, group: Option<&str>, now: SystemTime) -> Option<Silence> {
        self.lock()
            .iter()
            .find(|s| s.active(now) && s.covers(rule, group))
            .cloned()
    }

    /// Adds a silence from `now`; it is written to the file before this returns.
    pub fn add(&self, new: NewSilence, now: SystemTime) -> Result<Silence, SilenceError> {
        if new.rule.trim().is_empty() {
            return Err(SilenceError::NoRule);
        }
        if let Some(g) = &new.group
            && g.split_once('=').is_none_or(|(k, _)| k.is_empty())
        {
            return Err(SilenceError::BadGroup(g.clone()));
        }
        let silence = Silence {
            id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            rule: new.rule.trim().to_owned(),
            group: new.group,
            ends_at: unix(now + Duration::from_secs(new.seconds)),
            comment: new.comment,
        };
        let mut list = self.lock();
        list.retain(|s| s.active(now));
        list.push(silence.clone());
        self.write(&list)?;
        Ok(silence)
    }

    /// Ends a silence now.
    pub fn expire(&self, id: &str, now: SystemTime) -> Result<Silence, SilenceError> {
        let mut list = self.lock();
        let Some(i) = list.iter().position(|s| s.id == id && s.active(now)) else {
            return Err(SilenceError::Unknown(id.to_owned()));
        };
        let gone = list.remove(i);
        list.retain(|s| s.active(now));
        self.write(&list)?;
        Ok(gone)
    }

    fn write(&self, list: &[Silence]) -> Result<(), SilenceError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let io = |source| SilenceError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(list).expect("silences serialize");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

fn read(path: &Path) -> Result<Vec<Silence>, SilenceError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|source| SilenceError::Parse {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(SilenceError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// `GET /api/silences`, `POST /api/silences` (a [`NewSilence`]), `DELETE /api/silences/{id}`,
/// on the silences in force (the listener merges these routes into its own).
pub fn routes(silences: Silences) -> Router {
    Router::new()
        .route("/api/silences", get(list).post(add))
        .route("/api/silences/{id}", delete(expire))
        .with_state(silences)
}

async fn list(State(silences): State<Silences>) -> Json<Vec<Silence>> {
    Json(silences.list(SystemTime::now()))
}

async fn add(State(silences): State<Silences>, Json(new): Json<NewSilence>) -> Response {
    match silences.add(new, SystemTime::now()) {
        Ok(s) => {
            tracing::info!(id = %s.id, rule = %s.rule, group = ?s.group, comment = %s.comment, "silence added");
            (StatusCode::CREATED, Json(s)).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn expire(State(silences): State<Silences>, UrlPath(id): UrlPath<String>) -> Response {
    match silences.expire(&id, SystemTime::now()) {
        Ok(s) => {
            tracing::info!(id = %s.id, rule = %s.rule, "silence expired");
            Json(s).into_response()
        }
        Err(e @ SilenceError::Unknown(_)) => (StatusCode::NOT_FOUND, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// What `dingtail silence` does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Add one.
    Add(NewSilence),
    /// List those in force.
    List,
    /// End one.
    Expire(String),
}

/// Where `dingtail silence` acts.
#[derive(Debug, Clone)]
pub struct Place {
    /// The running instance's listener, if one is configured.
    pub listen: Option<std::net::SocketAddr>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// The zone times are shown in (the config's `timezone:`).
    pub zone: Zone,
}

/// One line per silence: `ID  rule [group]  until TIME ZONE  comment`, the time in the
/// config's `timezone:` (the zone messages and mute windows use), named so it is never taken
/// for another.
fn describe(s: &Silence, zone: Zone) -> String {
    let mut until = zone.format(
        SystemTime::UNIX_EPOCH + Duration::from_secs(s.ends_at),
        "%Y-%m-%d %H:%M:%S %:z",
    );
    if let Zone::Iana(_) = zone {
        until = format!("{until} ({zone})");
    }
    format!(
        "{}  {}{}  until {until}  {}",
        s.id,
        s.rule,
        s.group
            .as_ref()
            .map(|g| format!(" [{g}]"))
            .unwrap_or_default(),
        s.comment
    )
}

/// Carries out a `dingtail silence` command: on the instance listening at `place.listen` when
/// one answers there, else on the state directory's file (which an instance reads at start).
/// Returns the lines to print.
pub async fn act(place: &Place, action: Action) -> anyhow::Result<Vec<String>> {
    if let Some(addr) = place.listen {
        match remote(addr, &action, place.zone).await {
            Ok(lines) => return Ok(lines),
            Err(e) if e.is_connect() => {
                eprintln!("dingtail: nothing answers on {addr}; using the state directory");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let dir = crate::source::checkpoint::state_dir(place.state_dir.as_deref())?;
    let set = Silences::open(Some(&dir))?;
    let now = SystemTime::now();
    Ok(match action {
        Action::Add(new) => vec![describe(&set.add(new, now)?, place.zone)],
        Action::List => set
            .list(now)
            .iter()
            .map(|s| describe(s, place.zone))
            .collect(),
        Action::Expire(id) => vec![format!(
            "expired {}",
            describe(&set.expire(&id, now)?, place.zone)
        )],
    })
}

async fn remote(
    addr: std::net::SocketAddr,
    action: &Action,
    zone: Zone,
) -> Result<Vec<String>, reqwest::Error> {
    // reqwest is built without a default crypto provider (see `dingtalk::client`).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build()?;
    let base = format!("http://{addr}/api/silences");
    Ok(match action {
        Action::Add(new) => {
            let s: Silence = client
                .post(&base)
                .json(new)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            vec![describe(&s, zone)]
        }
        Action::List => {
            let list: Vec<Silence> = client
                .get(&base)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            list.iter().map(|s| describe(s, zone)).collect()
        }
        Action::Expire(id) => {
            let s: Silence = client
                .delete(format!("{base}/{id}"))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            vec![format!("expired {}", describe(&s, zone))]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silences_cover_a_rule_or_one_group_until_they_end_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let s = Silences::open(Some(dir.path())).unwrap();
        let whole = s
            .add(
                NewSilence {
                    rule: "db".into(),
                    group: None,
                    seconds: 60,
                    comment: "migration".into(),
                },
                t0,
            )
            .unwrap();
        s.add(
            NewSilence {
                rule: "ssh".into(),
                group: Some("ip=10.0.0.5".into()),
                seconds: 3600,
                comment: String::new(),
            },
            t0,
        )
        .unwrap();
        assert!(s.covering("db", None, t0).is_some());
        assert!(
            s.covering("db", None, t0 + Duration::from_secs(60))
                .is_none()
        );
        assert!(
            s.covering("ssh", Some("ip=10.0.0.5 user=root"), t0)
                .is_some()
        );
        assert!(
            s.covering("ssh", Some("ip=10.0.0.6 user=root"), t0)
                .is_none()
        );
        // Another process (a restart) sees them.
        let again = Silences::open(Some(dir.path())).unwrap();
        assert_eq!(again.list(t0).len(), 2);
        again.expire(&whole.id, t0).unwrap();
        assert_eq!(Silences::open(Some(dir.path())).unwrap().list(t0).len(), 1);
        assert!(matches!(
            again.add(
                NewSilence {
                    rule: "x".into(),
                    group: Some("novalue".into()),
                    seconds: 1,
                    comment: String::new()
                },
                t0
            ),
            Err(SilenceError::BadGroup(_))
        ));
    }
}
