use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdParseError {
    /// What kind of identifier was expected (`run`, `project`, `artifact`).
    pub kind: &'static str,
    /// The text that was given.
    pub input: String,
}

impl fmt::Display for IdParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a valid {} id (expected a UUID)",
            self.input, self.kind
        )
    }
}

impl std::error::Error for IdParseError {}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered (UUIDv7) identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The first eight hex digits, enough to tell runs apart on a terminal.
            pub fn short(&self) -> String {
                self.0.simple().to_string()[..8].to_string()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| IdParseError {
                    kind: $kind,
                    input: s.to_string(),
                })
            }
        }
    };
}

uuid_id!(
    /// Identifies one run of a workflow.
    RunId,
    "run"
);
uuid_id!(
    /// Identifies a project; every run belongs to one.
    ProjectId,
    "project"
);
uuid_id!(
    /// Identifies one version of one artifact.
    ArtifactId,
    "artifact"
);
uuid_id!(
    /// Identifies a client's session (a dashboard's tabs, UI state and read positions).
    SessionId,
    "session"
);
