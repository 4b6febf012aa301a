//! Conflicts a project's runs settled, read back for later mediation.

use botarmy_protocol::{
    Conflict, ConflictPosition, ConflictResolution, Event, MediationRound, RunId, Severity,
};

use crate::support::*;

fn conflict(description: &str) -> Conflict {
    Conflict {
        severity: Severity::High,
        description: description.into(),
        positions: vec![
            ConflictPosition {
                agent: "analyst".into(),
                artifact: "doc-0.md".into(),
                claim: "PostgreSQL".into(),
            },
            ConflictPosition {
                agent: "architect".into(),
                artifact: "doc-1.md".into(),
                claim: "SQLite".into(),
            },
        ],
    }
}

fn resolved(conflict: u32, resolution: &str, by: &str) -> Event {
    Event::ConflictResolved {
        step: 1,
        conflict,
        resolution: ConflictResolution {
            resolution: resolution.into(),
            by: by.into(),
            score: (by == "mediation").then_some(0.9),
        },
    }
}

pub async fn settled_conflicts_are_kept_per_project(ctx: &Ctx) {
    let store = &ctx.store;
    let first = new_run_at(store, "shop", 2, RunId::new(), 1_000).await;
    let found = |attempt: u32, n: u32, d: &str| Event::ConflictDetected {
        step: 1,
        attempt,
        conflict: n,
        detail: conflict(d),
    };
    let events = vec![
        Event::PipelineStarted {
            cycle_type: "greenfield".into(),
            workflow: "sdlc".into(),
        },
        Event::StepStarted {
            step: 1,
            attempt: 1,
            agent: "architect".into(),
        },
        found(1, 0, "storage"),
        found(1, 1, "auth"),
        Event::ConflictMediated {
            step: 1,
            conflict: 0,
            round: 1,
            outcome: MediationRound {
                proposal: "SQLite first".into(),
                score: 0.9,
                reasons: vec![],
            },
        },
        resolved(0, "SQLite first", "mediation"),
        // The second conflict is never settled in this attempt; the next attempt finds
        // another conflict under the same number and a person settles it.
        Event::StepStarted {
            step: 1,
            attempt: 2,
            agent: "architect".into(),
        },
        found(2, 0, "naming"),
        resolved(0, "Use the API's names", "ada"),
    ];
    store.append(first, 1, 2_000, batch(events)).await.unwrap();
    // A run of another project settles its own.
    let other = new_run_at(store, "elsewhere", 2, RunId::new(), 3_000).await;
    store
        .append(
            other,
            1,
            3_000,
            batch(vec![
                found(1, 0, "other"),
                resolved(0, "theirs", "mediation"),
            ]),
        )
        .await
        .unwrap();

    let project = store.get_run(first).await.unwrap().project_id;
    let settled = store.settled_conflicts(project).await.unwrap();
    let seen: Vec<(&str, &str, &str)> = settled
        .iter()
        .map(|s| {
            (
                s.conflict.description.as_str(),
                s.resolution.resolution.as_str(),
                s.resolution.by.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("storage", "SQLite first", "mediation"),
            ("naming", "Use the API's names", "ada"),
        ]
    );
    assert!(
        settled
            .iter()
            .all(|s| s.run_id == first && s.resolved_at == 2_000)
    );
    assert_eq!(settled[0].resolution.score, Some(0.9));
    assert_eq!(settled[0].conflict.positions.len(), 2);
    // A project without conflicts has none.
    let quiet = new_run_at(store, "quiet", 2, RunId::new(), 4_000).await;
    let quiet = store.get_run(quiet).await.unwrap().project_id;
    assert!(store.settled_conflicts(quiet).await.unwrap().is_empty());
}
