//! `DATABASE_URL` parsing: which backend, where, with which knobs, and how to name it in
//! messages without its password.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::StoreError;

/// How long a SQLite connection waits for another process's lock before giving up with
/// [`StoreError::Locked`], unless the URL says otherwise (`?busy_timeout_ms=N`).
pub(crate) const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a store lives.
pub(crate) enum Target {
    /// An embedded SQLite database.
    Sqlite(SqliteTarget),
    /// A PostgreSQL server.
    Postgres {
        /// Connection settings (with defaults filled in).
        config: tokio_postgres::Config,
        /// The URL without credentials, for messages.
        location: String,
    },
}

/// A SQLite database file, or a private in-memory database.
#[derive(Debug, Clone)]
pub(crate) struct SqliteTarget {
    /// The file; `None` for `sqlite::memory:`.
    pub(crate) path: Option<PathBuf>,
    /// How long to wait for a lock held by another connection.
    pub(crate) busy_timeout: Duration,
}

impl SqliteTarget {
    /// The path for messages.
    pub(crate) fn location(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => ":memory:".to_string(),
        }
    }
}

const EXPECTED: &str =
    "expected sqlite://PATH, sqlite::memory: or postgres://USER@HOST[:PORT]/DATABASE";

/// Parses a `DATABASE_URL`.
pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
    let url = url.trim();
    let bad = |reason: String| StoreError::BadUrl {
        url: redact(url),
        reason,
    };
    if let Some(rest) = url.strip_prefix("sqlite:") {
        return parse_sqlite(rest).map(Target::Sqlite).map_err(bad);
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| bad(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("botarmy");
        }
        let location = postgres_location(&config);
        return Ok(Target::Postgres { config, location });
    }
    Err(bad(EXPECTED.to_string()))
}

fn parse_sqlite(rest: &str) -> Result<SqliteTarget, String> {
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let mut busy_timeout = DEFAULT_BUSY_TIMEOUT;
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("busy_timeout_ms", v)) => {
                let ms: u64 = v.parse().map_err(|_| {
                    format!("busy_timeout_ms `{v}` is not a number of milliseconds")
                })?;
                busy_timeout = Duration::from_millis(ms);
            }
            _ => {
                return Err(format!(
                    "unknown parameter `{pair}` (known: busy_timeout_ms)"
                ));
            }
        }
    }
    let path = path.strip_prefix("//").unwrap_or(path);
    if path == ":memory:" {
        return Ok(SqliteTarget {
            path: None,
            busy_timeout,
        });
    }
    if path.is_empty() {
        return Err(format!("no file path given; {EXPECTED}"));
    }
    Ok(SqliteTarget {
        path: Some(PathBuf::from(path)),
        busy_timeout,
    })
}

fn postgres_location(config: &tokio_postgres::Config) -> String {
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let db = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{host}{port}/{db}")
}

/// The URL with any password removed (from the user-info part and from a `password=` query
/// parameter), fit for messages and logs.
pub fn redact(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                    format!("{user}@{host}")
                }
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => head.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://bob:s3cret@db:5432/x"),
            "postgres://bob@db:5432/x"
        );
        assert_eq!(
            redact("postgres://db/x?user=a&password=s3cret"),
            "postgres://db/x?user=a&password=***"
        );
        assert_eq!(redact("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert_eq!(redact("postgres://a:b@c@host/db"), "postgres://a@host/db");
    }

    #[test]
    fn parses_sqlite_forms() {
        let Target::Sqlite(t) = parse("sqlite:///tmp/x/a.db").unwrap() else {
            panic!()
        };
        assert_eq!(t.path.unwrap(), PathBuf::from("/tmp/x/a.db"));
        let Target::Sqlite(t) = parse("sqlite:rel.db?busy_timeout_ms=10").unwrap() else {
            panic!()
        };
        assert_eq!(t.path.unwrap(), PathBuf::from("rel.db"));
        assert_eq!(t.busy_timeout, Duration::from_millis(10));
        let Target::Sqlite(t) = parse("sqlite::memory:").unwrap() else {
            panic!()
        };
        assert!(t.path.is_none());
        assert!(matches!(parse("sqlite://"), Err(StoreError::BadUrl { .. })));
        assert!(matches!(
            parse("sqlite://a.db?x=1"),
            Err(StoreError::BadUrl { .. })
        ));
    }

    #[test]
    fn parses_postgres_without_leaking_the_password() {
        let Target::Postgres { location, .. } =
            parse("postgresql://bob:s3cret@127.0.0.1:5433/botarmy").unwrap()
        else {
            panic!()
        };
        assert_eq!(location, "postgres://bob@127.0.0.1:5433/botarmy");
        let err = parse("mysql://bob:s3cret@h/db").err().unwrap().to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("mysql://bob@h/db"), "{err}");
    }
}
