//! Gates: where a run stops for a human, and the scores that decide it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The confidence below which the default gate asks a human (the seeds' 80 %).
pub const DEFAULT_CONFIDENCE_BELOW: f64 = 0.8;
/// The quality below which the default gate asks a human (the seeds' 85 %).
pub const DEFAULT_QUALITY_BELOW: f64 = 0.85;

/// When a gate stops the run for a human's approval.
///
/// Written as text (`auto`, `always`, `confidence_below=0.8`,
/// `confidence_below=0.8,quality_below=0.85`) or, in YAML and TOML, as a map
/// (`{confidence_below: 0.8, quality_below: 0.85}`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GatePolicy {
    /// Never asks.
    Auto,
    /// Always asks.
    Always,
    /// Asks when a score is below its threshold (or missing).
    Thresholds(Thresholds),
}

/// The scores under which a [`GatePolicy::Thresholds`] gate asks.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Ask when the agents' own confidence is below this (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_below: Option<f64>,
    /// Ask when the measured quality is below this (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_below: Option<f64>,
}

impl Default for GatePolicy {
    fn default() -> Self {
        Self::Thresholds(Thresholds {
            confidence_below: Some(DEFAULT_CONFIDENCE_BELOW),
            quality_below: Some(DEFAULT_QUALITY_BELOW),
        })
    }
}

impl GatePolicy {
    /// Parses the text form; the error says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        match t {
            "auto" => return Ok(Self::Auto),
            "always" => return Ok(Self::Always),
            "default" => return Ok(Self::default()),
            _ => {}
        }
        let mut thresholds = Thresholds::default();
        for part in t.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once(['=', ':']) else {
                return Err(expected(text));
            };
            let value: f64 = value
                .trim()
                .parse()
                .map_err(|_| format!("`{}` in `{text}` is not a number", value.trim()))?;
            let slot = match key.trim() {
                "confidence_below" => &mut thresholds.confidence_below,
                "quality_below" => &mut thresholds.quality_below,
                _ => return Err(expected(text)),
            };
            *slot = Some(value);
        }
        Self::Thresholds(thresholds).validated(text)
    }

    fn validated(self, text: &str) -> Result<Self, String> {
        if let Self::Thresholds(t) = self {
            if t.confidence_below.is_none() && t.quality_below.is_none() {
                return Err(expected(text));
            }
            for v in [t.confidence_below, t.quality_below].into_iter().flatten() {
                if !(0.0..=1.0).contains(&v) {
                    return Err(format!(
                        "threshold {v} in `{text}` is outside 0 to 1 (a score is a fraction)"
                    ));
                }
            }
        }
        Ok(self)
    }

    /// Why a gate with this policy asks a human about outputs with these scores (none:
    /// it lets them pass).
    pub fn trips(&self, confidence: Option<&Score>, quality: Option<&Score>) -> Vec<String> {
        match self {
            Self::Auto => Vec::new(),
            Self::Always => vec!["the gate always asks for approval".to_owned()],
            Self::Thresholds(t) => {
                let mut why = Vec::new();
                for (name, limit, score) in [
                    ("confidence", t.confidence_below, confidence),
                    ("quality", t.quality_below, quality),
                ] {
                    let Some(limit) = limit else { continue };
                    match score {
                        None => why.push(format!("no {name} score (needs at least {limit:.2})")),
                        Some(s) if s.value < limit => why.push(format!(
                            "{name} {:.2} is below {limit:.2}{}",
                            s.value,
                            s.reasons
                                .first()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        )),
                        Some(_) => {}
                    }
                }
                why
            }
        }
    }

    /// Whether the policy reads the quality score (so measuring it is worth a call).
    pub fn uses_quality(&self) -> bool {
        matches!(self, Self::Thresholds(t) if t.quality_below.is_some())
    }
}

fn expected(text: &str) -> String {
    format!(
        "`{text}` is not a gate policy; expected `auto`, `always`, or thresholds such as \
         `confidence_below=0.8,quality_below=0.85`"
    )
}

impl fmt::Display for GatePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Always => f.write_str("always"),
            Self::Thresholds(t) => {
                let mut parts = Vec::new();
                if let Some(c) = t.confidence_below {
                    parts.push(format!("confidence_below={c}"));
                }
                if let Some(q) = t.quality_below {
                    parts.push(format!("quality_below={q}"));
                }
                f.write_str(&parts.join(","))
            }
        }
    }
}

impl Serialize for GatePolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GatePolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Map(Thresholds),
        }
        match Repr::deserialize(d)? {
            Repr::Text(t) => Self::parse(&t).map_err(serde::de::Error::custom),
            Repr::Map(t) => Self::Thresholds(t)
                .validated("the thresholds")
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A score from 0 to 1 with what it was made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// From 0 (worst) to 1 (best).
    pub value: f64,
    /// What lowered or explains it, most important first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// The scores of a step's output, stored with the step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// The agent's own confidence in its output (none: it gave no self-assessment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Score>,
    /// Measured quality: template sections present, outputs produced, checklist passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Score>,
    /// The checklist's items with their verdicts, when one was executed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checklist: Vec<ChecklistItem>,
    /// Risk cards, when the step is a risk review; a high one holds its gate until a
    /// person acknowledges it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risks: Vec<RiskCard>,
}

/// One risk a risk review found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskCard {
    /// Short name.
    pub title: String,
    /// How bad.
    pub severity: Severity,
    /// What could go wrong and why.
    pub description: String,
    /// What to do about it.
    pub mitigation: String,
}

/// A risk's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Must be dealt with, or knowingly accepted, before launch.
    High,
    /// Worth a mitigation.
    Medium,
    /// Noted.
    Low,
}

/// One item of an executed checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// The item's text.
    pub item: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// A checklist item's verdict (BMAD's pass / fail / partial / not applicable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Met.
    Pass,
    /// Not met.
    Fail,
    /// Met in part.
    Partial,
    /// Does not apply.
    NotApplicable,
}

/// What happens when an approval waits longer than its gate allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutAction {
    /// Log a reminder (`hitl_timed_out`); the gate keeps waiting.
    Remind,
    /// Mark the request escalated (`hitl_timed_out`); the gate keeps waiting.
    Escalate,
    /// Approve it in the human's stead (logged as by `timeout`).
    Approve,
    /// Fail the run.
    Fail,
}

/// How long a gate's approval may wait, and what then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateTimeout {
    /// Seconds after the request (`"30m"`, `"4h"`, `"2d"` or a number of seconds when
    /// written by a person).
    #[serde(deserialize_with = "duration_secs")]
    pub after: u64,
    /// What happens then.
    pub then: TimeoutAction,
}

/// Reads `90`, `"90s"`, `"30m"`, `"4h"` or `"2d"` as seconds.
fn duration_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Secs(u64),
        Text(String),
    }
    match Repr::deserialize(d)? {
        Repr::Secs(s) => Ok(s),
        Repr::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

/// `"90s"`, `"30m"`, `"4h"`, `"2d"` or a bare number of seconds, as seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (expected e.g. 90s, 30m, 4h, 2d)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{text}` is not a duration (expected e.g. 90s, 30m, 4h, 2d)"
            ));
        }
    };
    Ok(n * scale)
}

/// A gate of a plan: the steps whose outputs it approves, and its policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanGate {
    /// Stable name: `phase:<id>` for a phase's gate, the step key for a step's own.
    pub key: String,
    /// For people (`Design phase`, `Write the API specification`).
    pub title: String,
    /// The steps it covers; steps that depend on them wait until it passes.
    pub steps: Vec<u32>,
    /// The policy written in the workflow (none: the run's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<GatePolicy>,
    /// How long its approval may wait, from the workflow (none: the run's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GateTimeout>,
}

/// What a human decided at a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HitlDecision {
    /// The outputs pass; the run goes on.
    Approved,
    /// The outputs are sent back with feedback; the steps named restart.
    Rejected,
    /// A human edited an output (stored as its new version) and approved it.
    Amended,
}

impl HitlDecision {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Amended => "amended",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_from_text_and_maps_and_print_back() {
        for text in [
            "auto",
            "always",
            "confidence_below=0.7",
            "quality_below=0.9",
            "confidence_below=0.8,quality_below=0.85",
        ] {
            let p = GatePolicy::parse(text).unwrap();
            assert_eq!(p.to_string(), text);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<GatePolicy>(&json).unwrap(), p);
        }
        assert_eq!(GatePolicy::parse("default").unwrap(), GatePolicy::default());
        let map: GatePolicy = serde_json::from_str(r#"{"quality_below":0.5}"#).unwrap();
        assert_eq!(map.to_string(), "quality_below=0.5");
    }

    #[test]
    fn bad_policies_say_what_was_expected() {
        for (text, says) in [
            ("sometimes", "expected `auto`, `always`"),
            ("confidence_below=high", "not a number"),
            ("quality_below=85", "outside 0 to 1"),
            ("speed_below=0.3", "not a gate policy"),
        ] {
            let e = GatePolicy::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        let e = serde_json::from_str::<GatePolicy>(r#"{"confidence":0.5}"#).unwrap_err();
        assert!(e.to_string().contains("did not match"), "{e}");
    }

    #[test]
    fn timeouts_read_durations_in_words() {
        let t: GateTimeout = serde_json::from_str(r#"{"after": "4h", "then": "approve"}"#).unwrap();
        assert_eq!((t.after, t.then), (14_400, TimeoutAction::Approve));
        let t: GateTimeout = serde_json::from_str(r#"{"after": 90, "then": "remind"}"#).unwrap();
        assert_eq!(t.after, 90);
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(
            serde_json::from_str::<GateTimeout>(r#"{"after": "1h", "then": "panic"}"#).is_err()
        );
    }

    #[test]
    fn thresholds_trip_on_low_or_missing_scores() {
        let p = GatePolicy::default();
        let high = Score {
            value: 0.9,
            reasons: vec![],
        };
        let low = Score {
            value: 0.5,
            reasons: vec!["two sections are missing".into()],
        };
        assert!(p.trips(Some(&high), Some(&high)).is_empty());
        let why = p.trips(Some(&high), Some(&low));
        assert_eq!(
            why,
            ["quality 0.50 is below 0.85: two sections are missing"]
        );
        assert_eq!(p.trips(None, Some(&high)).len(), 1);
        assert!(GatePolicy::Auto.trips(None, None).is_empty());
        assert_eq!(GatePolicy::Always.trips(Some(&high), Some(&high)).len(), 1);
    }
}
