//! Client sessions: kept per tenant, changed atomically, read positions that never move
//! back, gone with their run and when expired.

use std::sync::Arc;

use botarmy_protocol::{Event, RunId, SessionId};
use botarmy_store::{SessionRecord, SessionTab, StoreError};
use serde_json::json;

use crate::support::*;

fn session(tenant: &str, name: &str, at: i64) -> SessionRecord {
    SessionRecord {
        id: SessionId::new(),
        tenant: tenant.into(),
        name: name.into(),
        ui_state: json!({"theme": "dark"}),
        tabs: vec![tab("runs", None)],
        acked: Default::default(),
        created_at: at,
        updated_at: at,
        last_seen_at: None,
    }
}

fn tab(id: &str, run: Option<RunId>) -> SessionTab {
    SessionTab {
        id: id.into(),
        title: id.to_uppercase(),
        run_id: run,
        project_id: None,
        active: false,
        state: json!({"scroll": 0}),
    }
}

fn not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::NotFound { what, .. }) => assert_eq!(what, "session"),
        other => panic!("expected a missing session, got {other:?}"),
    }
}

pub async fn sessions_are_kept_changed_and_acknowledged(ctx: &Ctx) {
    let s = &ctx.store;
    let run = new_run(s, "web", 2).await;
    let other = new_run(s, "web", 2).await;
    let mine = session("default", "laptop", 1_000);
    let second = session("default", "phone", 1_100);
    let theirs = session("globex", "laptop", 1_200);
    for one in [&mine, &second, &theirs] {
        s.create_session(one.clone()).await.unwrap();
    }
    let bad = SessionRecord {
        tenant: "no spaces".into(),
        ..session("x", "y", 1)
    };
    assert!(matches!(
        s.create_session(bad).await,
        Err(StoreError::InvalidInput { .. })
    ));

    // Read back whole, and only by its tenant.
    assert_eq!(s.get_session_in("default", mine.id).await.unwrap(), mine);
    not_found(s.get_session_in("globex", mine.id).await);
    not_found(s.get_session_in("default", SessionId::new()).await);
    s.touch_session(mine.id, 5_000).await.unwrap();
    s.touch_session(mine.id, 4_000).await.unwrap();
    let listed = s.list_sessions_in("default").await.unwrap();
    let ids: Vec<SessionId> = listed.iter().map(|x| x.id).collect();
    assert_eq!(ids, [mine.id, second.id], "most recently seen first");
    assert_eq!(listed[0].last_seen_at, Some(5_000), "never moves back");

    // Changes made at once all take effect.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = Arc::clone(s);
        tasks.push(tokio::spawn(async move {
            s.update_session_in(
                "default",
                mine.id,
                2_000 + i,
                Box::new(move |x: &mut SessionRecord| {
                    x.tabs.push(tab(&format!("run-{i}"), Some(run)));
                    Ok(())
                }),
            )
            .await
            .unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let changed = s
        .update_session_in(
            "default",
            mine.id,
            3_000,
            Box::new(|x: &mut SessionRecord| {
                x.name = "work laptop".into();
                x.ui_state = json!({"theme": "light", "panes": [1, 2]});
                // What is the store's own stays.
                x.id = SessionId::new();
                x.tenant = "globex".into();
                x.created_at = 0;
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert_eq!(changed.tabs.len(), 9, "{:?}", changed.tabs);
    assert_eq!(
        (changed.id, changed.tenant.as_str(), changed.created_at),
        (mine.id, "default", 1_000)
    );
    assert_eq!(changed.updated_at, 3_000);
    assert_eq!(s.get_session_in("default", mine.id).await.unwrap(), changed);
    // A refused change writes nothing; another tenant's session cannot be changed.
    let refused = s
        .update_session_in(
            "default",
            mine.id,
            4_000,
            Box::new(|x: &mut SessionRecord| {
                x.tabs.clear();
                Err(StoreError::NotFound {
                    what: "tab",
                    id: "nine".into(),
                })
            }),
        )
        .await;
    assert!(matches!(
        refused,
        Err(StoreError::NotFound { what: "tab", .. })
    ));
    assert_eq!(s.get_session_in("default", mine.id).await.unwrap(), changed);
    not_found(
        s.update_session_in("globex", mine.id, 4_000, Box::new(|_| Ok(())))
            .await,
    );

    // Read positions only move forward.
    let acked = s
        .ack_session_in("default", mine.id, vec![(run, 1), (other, 1)], 6_000)
        .await
        .unwrap();
    assert_eq!(acked.len(), 2);
    let acked = s
        .ack_session_in("default", mine.id, vec![(run, 0)], 6_100)
        .await
        .unwrap();
    assert_eq!(acked[&run], 1);
    not_found(
        s.ack_session_in("globex", mine.id, vec![(run, 1)], 6_200)
            .await,
    );
    assert_eq!(
        s.get_session_in("default", mine.id).await.unwrap().acked[&other],
        1
    );

    // A deleted run takes its positions with it.
    s.append(
        other,
        1,
        7_000,
        batch(vec![Event::PipelineCancelled {
            reason: "not needed".into(),
        }]),
    )
    .await
    .unwrap();
    s.delete_run_in("default", other).await.unwrap();
    let kept = s.get_session_in("default", mine.id).await.unwrap();
    assert_eq!(kept.acked.keys().collect::<Vec<_>>(), [&run]);

    // Deleted by its tenant only; expiry takes the ones not seen since.
    not_found(s.delete_session_in("globex", mine.id).await);
    s.delete_session_in("default", mine.id).await.unwrap();
    not_found(s.get_session_in("default", mine.id).await);
    not_found(s.delete_session_in("default", mine.id).await);
    assert_eq!(s.expire_sessions(1_150).await.unwrap(), 1, "the phone");
    assert!(s.list_sessions_in("default").await.unwrap().is_empty());
    assert_eq!(s.list_sessions_in("globex").await.unwrap().len(), 1);
}
