//! When a project or a run may be deleted, said once for both backends.

use botarmy_protocol::{ProjectId, RunId, RunStatus};

use crate::StoreError;

/// The tables that hold a run's rows, children before parents (the order deletes go in).
pub(crate) const RUN_TABLES: [&str; 6] = [
    "llm_calls",
    "artifacts",
    "events",
    "step_attempts",
    "steps",
    "runs",
];

fn listed(runs: &[(RunId, RunStatus)]) -> String {
    runs.iter()
        .map(|(run, status)| format!("{run} ({status})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why the project with these runs may not be deleted, if it may not.
pub(crate) fn project_refusal(
    id: ProjectId,
    runs: &[(RunId, RunStatus)],
    with_finished_runs: bool,
) -> Option<StoreError> {
    let unfinished: Vec<(RunId, RunStatus)> = runs
        .iter()
        .copied()
        .filter(|(_, status)| !status.is_terminal())
        .collect();
    let (reason, in_the_way) = if !unfinished.is_empty() {
        (
            format!(
                "has runs that are not finished: {}; cancel them first",
                listed(&unfinished)
            ),
            unfinished,
        )
    } else if !runs.is_empty() && !with_finished_runs {
        (
            format!(
                "has {} finished run(s), which would be deleted with it: {}; ask again with force to delete them too",
                runs.len(),
                listed(runs)
            ),
            runs.to_vec(),
        )
    } else {
        return None;
    };
    Some(StoreError::InUse {
        what: "project",
        id: id.to_string(),
        reason,
        runs: in_the_way.into_iter().map(|(run, _)| run).collect(),
    })
}

/// Why a run in this state may not be deleted, if it may not.
pub(crate) fn run_refusal(run_id: RunId, status: RunStatus) -> Option<StoreError> {
    (!status.is_terminal()).then(|| StoreError::InUse {
        what: "run",
        id: run_id.to_string(),
        reason: format!("is {status}, not finished; cancel it first"),
        runs: vec![run_id],
    })
}
