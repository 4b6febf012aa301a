//! The one typed configuration of the `botarmy` binary, built once from defaults, the
//! environment and the command line, then passed down.

use std::path::PathBuf;

/// Which model answers the agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderChoice {
    /// The embedded CPU model (default).
    Local,
    /// Answers recorded in a cassette.
    Replay,
}

/// Settings every command shares.
#[derive(Debug, Clone)]
pub struct Config {
    /// `BOTARMY_HOME`: models, database and other state.
    pub home: PathBuf,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `BOTARMY_PROVIDER`.
    pub provider: ProviderChoice,
    /// `BOTARMY_MODEL`: a GGUF file to use instead of the default model.
    pub model_file: Option<PathBuf>,
    /// `BOTARMY_CASSETTE`: the cassette replayed by the replay provider.
    pub cassette: Option<PathBuf>,
    /// `BOTARMY_THREADS`: CPU threads for the embedded model.
    pub threads: Option<u32>,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{key}={value:?}: {expected}")]
pub struct ConfigError {
    /// The variable or flag.
    pub key: &'static str,
    /// What was given.
    pub value: String,
    /// What was expected.
    pub expected: String,
}

impl Config {
    /// Builds the configuration from an environment lookup (the process environment in the
    /// binary, a map in tests).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |key: &str| get(key).filter(|v| !v.trim().is_empty());
        let home = match non_empty("BOTARMY_HOME") {
            Some(h) => PathBuf::from(h),
            None => default_home().ok_or_else(|| ConfigError {
                key: "BOTARMY_HOME",
                value: String::new(),
                expected: "a folder for BotArmy's data (no platform data folder was found)".into(),
            })?,
        };
        let database_url = non_empty("DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}", home.join("botarmy.db").display()));
        let provider = match non_empty("BOTARMY_PROVIDER").as_deref().map(str::trim) {
            None | Some("local") => ProviderChoice::Local,
            Some("replay") => ProviderChoice::Replay,
            Some(other) => {
                return Err(ConfigError {
                    key: "BOTARMY_PROVIDER",
                    value: other.into(),
                    expected: "`local` (the embedded model) or `replay` (a recorded cassette); cloud providers come in a later release".into(),
                });
            }
        };
        let cassette = non_empty("BOTARMY_CASSETTE").map(PathBuf::from);
        if provider == ProviderChoice::Replay && cassette.is_none() {
            return Err(ConfigError {
                key: "BOTARMY_CASSETTE",
                value: String::new(),
                expected: "the path of a cassette recorded with `botarmy run --record FILE` (BOTARMY_PROVIDER=replay needs one)".into(),
            });
        }
        let threads =
            match non_empty("BOTARMY_THREADS") {
                None => None,
                Some(v) => Some(v.trim().parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(
                    || ConfigError {
                        key: "BOTARMY_THREADS",
                        value: v.clone(),
                        expected: "a positive whole number of CPU threads".into(),
                    },
                )?),
            };
        Ok(Self {
            home,
            database_url,
            provider,
            model_file: non_empty("BOTARMY_MODEL").map(PathBuf::from),
            cassette,
            threads,
        })
    }

    /// Where downloaded models are kept.
    pub fn models_dir(&self) -> PathBuf {
        self.home.join("models")
    }
}

fn default_home() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("botarmy"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_put_the_database_in_the_home_folder() {
        let c = Config::from_env(env(&[("BOTARMY_HOME", "/data/ba")])).unwrap();
        assert_eq!(c.database_url, "sqlite:///data/ba/botarmy.db");
        assert_eq!(c.provider, ProviderChoice::Local);
        assert_eq!(c.models_dir(), PathBuf::from("/data/ba/models"));
    }

    #[test]
    fn bad_values_name_the_variable_and_what_was_expected() {
        let e = Config::from_env(env(&[("BOTARMY_HOME", "/x"), ("BOTARMY_PROVIDER", "gpt")]))
            .unwrap_err();
        assert_eq!(e.key, "BOTARMY_PROVIDER");
        assert!(
            e.to_string()
                .starts_with("BOTARMY_PROVIDER=\"gpt\": `local`"),
            "{e}"
        );
        let e = Config::from_env(env(&[
            ("BOTARMY_HOME", "/x"),
            ("BOTARMY_PROVIDER", "replay"),
        ]))
        .unwrap_err();
        assert_eq!(e.key, "BOTARMY_CASSETTE");
        let e = Config::from_env(env(&[("BOTARMY_HOME", "/x"), ("BOTARMY_THREADS", "zero")]))
            .unwrap_err();
        assert_eq!(e.key, "BOTARMY_THREADS");
    }
}
