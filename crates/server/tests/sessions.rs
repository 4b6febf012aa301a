//! Client sessions: tabs and UI state kept across reconnects and restarts; on reconnect the
//! events missed while offline (counted, then sent), the text of calls still streaming,
//! and acknowledgements that move where the next connection starts.

use botarmy_protocol::RunId;
use serde_json::{Value, json};

use crate::support::*;

async fn patch(server: &TestServer, path: &str, body: &Value) -> Answer {
    server
        .answer(
            server
                .client
                .patch(format!("{}{path}", server.http))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
}

/// Opens a session's stream; returns it and its `session_restored` message.
async fn connect(server: &TestServer, session: &str) -> (Ws, Value) {
    let url = format!("{}/ws?session_id={session}", server.ws);
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut ws = Ws::raw(socket);
    let restored = ws.next().await.expect("session_restored");
    assert_eq!(restored["type"], "session_restored", "{restored}");
    (ws, restored)
}

/// Reads messages until one satisfies `stop`; returns all of them.
async fn read_until(ws: &mut Ws, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let message = ws.next().await.expect("the stream goes on");
        let done = stop(&message);
        out.push(message);
        if done {
            return out;
        }
    }
}

fn of_type<'a>(messages: &'a [Value], kind: &str) -> Vec<&'a Value> {
    messages.iter().filter(|m| m["type"] == kind).collect()
}

fn seqs(messages: &[Value], run: &str) -> Vec<u64> {
    messages
        .iter()
        .filter(|m| m["run_id"] == run && m["seq"].is_u64())
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

pub async fn sessions_keep_tabs_and_ui_state(backend: Backend) {
    let mut server = start(backend).await;
    let run = server.create_run("a kettle timer").await;
    let project = server.get(&format!("/api/runs/{run}")).await.body["project_id"].clone();

    // Bad input names the field at fault; nothing is created.
    let ghost = RunId::new();
    let bad = server
        .post(
            "/api/sessions",
            &json!({
                "name": "laptop",
                "ui_state": [1, 2],
                "tabs": [
                    {"id": "a", "run_id": ghost},
                    {"id": "a", "title": "x"},
                    {"id": "no spaces", "active": true},
                    {"id": "c", "active": true, "state": {"big": "x".repeat(20_000)}},
                ],
            }),
        )
        .await;
    let mut paths = bad.error(422, "validation_failed");
    paths.sort();
    assert_eq!(
        paths,
        [
            "tabs",
            "tabs[0].run_id",
            "tabs[1].id",
            "tabs[2].id",
            "tabs[3].state",
            "ui_state"
        ]
    );
    let unknown = server
        .post("/api/sessions", &json!({"name": "x", "colour": "red"}))
        .await;
    assert_eq!(unknown.error(400, "invalid_request"), ["colour"]);
    assert_eq!(server.get("/api/sessions").await.body["items"], json!([]));

    let created = server
        .post(
            "/api/sessions",
            &json!({
                "name": "laptop",
                "ui_state": {"theme": "dark", "split": 0.4},
                "tabs": [
                    {"id": "run", "title": "Kettle", "run_id": run, "active": true, "state": {"step": 2}},
                    {"id": "project", "title": "All", "project_id": project},
                ],
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers["location"].to_str().unwrap(),
        format!("/api/sessions/{id}")
    );
    assert_eq!(created.body["tabs"][0]["state"], json!({"step": 2}));
    assert_eq!(created.body["connected"], 0);
    let path = format!("/api/sessions/{id}");

    // Tabs: opened, brought to front (the other goes back), changed, closed.
    let opened = server
        .post(
            &format!("{path}/tabs"),
            &json!({"title": "Docs", "state": {"page": "api"}}),
        )
        .await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let docs = opened.body["tabs"][2]["id"].as_str().unwrap().to_owned();
    let twice = server
        .post(&format!("{path}/tabs"), &json!({"id": "run"}))
        .await;
    twice.error(409, "conflict");
    let front = patch(
        &server,
        &format!("{path}/tabs/{docs}"),
        &json!({"active": true, "title": "API docs"}),
    )
    .await;
    assert_eq!(front.status, 200, "{}", front.body);
    let active: Vec<bool> = front.body["tabs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["active"].as_bool().unwrap())
        .collect();
    assert_eq!(active, [false, false, true]);
    let cleared = patch(
        &server,
        &format!("{path}/tabs/run"),
        &json!({"run_id": null}),
    )
    .await;
    assert_eq!(cleared.body["tabs"][0]["run_id"], Value::Null);
    let restored = patch(
        &server,
        &format!("{path}/tabs/run"),
        &json!({"run_id": run}),
    )
    .await;
    assert_eq!(restored.body["tabs"][0]["run_id"], run.to_string());
    let wrong = patch(
        &server,
        &format!("{path}/tabs/run"),
        &json!({"run_id": ghost}),
    )
    .await;
    assert_eq!(wrong.error(422, "validation_failed"), ["run_id"]);
    let missing_tab = patch(
        &server,
        &format!("{path}/tabs/nope"),
        &json!({"title": "x"}),
    )
    .await;
    missing_tab.error(404, "not_found");
    let closed = server.answer_delete(&format!("{path}/tabs/project")).await;
    assert_eq!(closed.status, 200);
    assert_eq!(closed.body["tabs"].as_array().unwrap().len(), 2);
    let renamed = patch(
        &server,
        &path,
        &json!({"name": "work laptop", "ui_state": {"theme": "light"}}),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);

    // Acknowledgements: of the caller's runs, never past their last event.
    let last = server.get(&format!("/api/runs/{run}")).await.body["last_seq"]
        .as_u64()
        .unwrap();
    let past = server
        .post(
            &format!("{path}/ack"),
            &json!({"acks": [{"run_id": run, "seq": last + 5}, {"run_id": ghost, "seq": 1}]}),
        )
        .await;
    assert_eq!(
        past.error(422, "validation_failed"),
        ["acks[0].seq", "acks[1].run_id"]
    );
    let acked = server
        .post(
            &format!("{path}/ack"),
            &json!({"acks": [{"run_id": run, "seq": 1}]}),
        )
        .await;
    assert_eq!(acked.status, 200, "{}", acked.body);
    assert_eq!(acked.body["acked"][run.to_string()], 1);

    // All of it survives a restart of the server.
    let before = server.get(&path).await.body;
    server.restart().await;
    let after = server.get(&path).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body, before);
    assert_eq!(after.body["name"], "work laptop");
    assert_eq!(after.body["ui_state"], json!({"theme": "light"}));
    assert_eq!(after.body["acked"][run.to_string()], 1);
    let tabs: Vec<&str> = after.body["tabs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(tabs, ["Kettle", "API docs"]);

    // Restore: the run's full state and how much of it the client has not read.
    let restore = server.get(&format!("{path}/restore")).await;
    assert_eq!(restore.status, 200, "{}", restore.body);
    let followed = &restore.body["runs"][0];
    assert_eq!(followed["run"]["id"], run.to_string());
    assert!(followed["run"]["steps"].as_array().unwrap().len() > 6);
    assert_eq!(followed["acked"], 1);
    let last_now = followed["run"]["last_seq"].as_u64().unwrap();
    assert_eq!(followed["missed"], last_now - 1);

    let deleted = server.answer_delete(&path).await;
    assert_eq!(deleted.status, 204);
    server.get(&path).await.error(404, "not_found");
    server
        .get(&format!("{path}/restore"))
        .await
        .error(404, "not_found");
    server.shutdown().await;
}

pub async fn a_reconnecting_session_gets_what_it_missed(backend: Backend) {
    let server = start(backend).await;
    let run = server.create_run("a kettle timer").await;
    let run_text = run.to_string();
    // Two calls go through; the run then waits for the model.
    server.model.release(2);
    let id = server
        .post(
            "/api/sessions",
            &json!({"name": "laptop", "tabs": [{"id": "t", "run_id": run}]}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let settled = server.wait_for_event(run, "llm_call_completed").await;
    server.wait_past(run, settled).await;

    // First connection: everything is missed, from the first event.
    let (mut ws, restored) = connect(&server, &id).await;
    assert_eq!(restored["session"]["id"], id.as_str());
    assert_eq!(restored["session"]["connected"], 1);
    assert_eq!(restored["runs"][0]["acked"], 0);
    let count = restored["runs"][0]["missed"].as_u64().unwrap();
    assert!(count >= 4, "{restored}");
    let first = read_until(&mut ws, |m| {
        m["seq"] == count && m["run_id"] == run_text.as_str()
    })
    .await;
    let offline = of_type(&first, "offline_event");
    assert_eq!(offline.len(), 1);
    assert_eq!(
        (offline[0]["count"].as_u64(), offline[0]["since"].as_u64()),
        (Some(count), Some(0))
    );
    assert_eq!(seqs(&first, &run_text), (1..=count).collect::<Vec<_>>());
    // The client has read up to `read`, and says so.
    let read = count - 1;
    ws.send(&json!({"type": "ack", "run_id": run, "seq": read}))
        .await;
    let acked = read_until(&mut ws, |m| m["type"] == "acked").await;
    assert_eq!(acked.last().unwrap()["acked"][&run_text], read);
    ws.send(&json!({"type": "ack", "run_id": run, "seq": 10_000}))
        .await;
    let refused = read_until(&mut ws, |m| m["type"] == "error").await;
    assert_eq!(
        refused.last().unwrap()["details"][0]["path"],
        "acks[0].seq",
        "{refused:?}"
    );
    ws.send(&json!({"type": "hello"})).await;
    let unknown = read_until(&mut ws, |m| m["type"] == "error").await;
    assert_eq!(unknown.last().unwrap()["code"], "invalid_request");
    drop(ws);

    // Offline: the run goes on to the middle of a streamed answer.
    server
        .model
        .stop_halfway
        .store(true, std::sync::atomic::Ordering::SeqCst);
    server.model.release(usize::MAX >> 8);
    tokio::time::timeout(PATIENCE, server.model.halfway.notified())
        .await
        .expect("a document answer reaches its middle");

    // Back: the session, the events after the acknowledged one (counted, then sent, each
    // once), then the text of the call still streaming.
    let (mut ws, restored) = connect(&server, &id).await;
    assert_eq!(restored["runs"][0]["acked"], read);
    let missed = restored["runs"][0]["missed"].as_u64().unwrap();
    assert!(missed >= 1, "{restored}");
    assert_eq!(
        restored["runs"][0]["run"]["last_seq"].as_u64(),
        Some(read + missed)
    );
    assert_eq!(restored["runs"][0]["run"]["status"], "running");
    let back = read_until(&mut ws, |m| {
        m["type"] == "token_catchup"
            && m["text"]
                .as_str()
                .is_some_and(|t| t.ends_with(&format!(".{} ", PIECES_PER_CALL / 2 - 1)))
    })
    .await;
    let offline = of_type(&back, "offline_event");
    assert_eq!(offline[0]["count"], missed);
    assert_eq!(offline[0]["since"], read);
    let got: Vec<&Value> = back.iter().filter(|m| m["seq"].is_u64()).collect();
    let stored = server.stored_log(run).await;
    let expected: Vec<&Value> = stored.iter().skip(read as usize).take(got.len()).collect();
    assert!(got.len() as u64 >= missed);
    assert_eq!(
        got, expected,
        "exactly the events after the acknowledged one"
    );
    let catchup = back.last().unwrap();
    let half = catchup["text"].as_str().unwrap().to_owned();
    // Stopped before its piece number PIECES_PER_CALL / 2.
    assert!(half.starts_with("## Overview"), "{catchup}");
    assert!(
        half.ends_with(&format!(".{} ", PIECES_PER_CALL / 2 - 1)),
        "{catchup}"
    );
    let step = catchup["step"].clone();

    // The rest of the call's text follows as tokens; the whole answer is stored once.
    server.model.go_on.add_permits(1);
    let rest = read_until(&mut ws, |m| {
        m["type"] == "llm_call_completed" && m["step"] == step
    })
    .await;
    let streamed: String = of_type(&rest, "token")
        .iter()
        .filter(|t| t["step"] == step)
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    let response = rest.last().unwrap()["response"].as_str().unwrap();
    assert_eq!(format!("{half}{streamed}"), response);
    // Then on to the end, each event once.
    let tail = read_until(&mut ws, |m| m["type"] == "pipeline_completed").await;
    let mut all: Vec<u64> = seqs(&back, &run_text);
    all.extend(seqs(&rest, &run_text));
    all.extend(seqs(&tail, &run_text));
    let end = server.stored_log(run).await.len() as u64;
    assert_eq!(all, (read + 1..=end).collect::<Vec<_>>());
    server.answer_delete(&format!("/api/sessions/{id}")).await;
}

pub async fn a_session_follows_tabs_opened_while_connected(backend: Backend) {
    let server = start(backend).await;
    server.model.open();
    let project = server
        .post("/api/projects", &json!({"name": "toys"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let old = server.create_run("a dice roller").await;
    server.wait_for_event(old, "pipeline_completed").await;
    let id = server
        .post("/api/sessions", &json!({"name": "phone"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut ws, restored) = connect(&server, &id).await;
    assert_eq!(restored["runs"], json!([]));

    // A tab on a finished run: its whole log comes, counted.
    let tab = server
        .post(
            &format!("/api/sessions/{id}/tabs"),
            &json!({"id": "old", "run_id": old}),
        )
        .await;
    assert_eq!(tab.status, 201, "{}", tab.body);
    let old_text = old.to_string();
    let old_log = server.stored_log(old).await;
    let whole = read_until(&mut ws, |m| {
        m["run_id"] == old_text.as_str() && m["type"] == "pipeline_completed"
    })
    .await;
    assert_eq!(of_type(&whole, "offline_event")[0]["count"], old_log.len());
    assert_eq!(
        seqs(&whole, &old_text),
        (1..=old_log.len() as u64).collect::<Vec<_>>()
    );

    // A tab on a project: a run started in it is streamed whole.
    let tab = server
        .post(
            &format!("/api/sessions/{id}/tabs"),
            &json!({"id": "toys", "project_id": project}),
        )
        .await;
    assert_eq!(tab.status, 201);
    let fresh = server
        .post(
            "/api/runs",
            &json!({"idea": "a yo-yo", "project_id": project, "options": {"gate_policy": "auto"}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let streamed = read_until(&mut ws, |m| {
        m["run_id"] == fresh.as_str() && m["type"] == "pipeline_completed"
    })
    .await;
    let got = seqs(&streamed, &fresh);
    assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>());

    // Deleting the session ends its stream, saying why.
    let deleted = server.answer_delete(&format!("/api/sessions/{id}")).await;
    assert_eq!(deleted.status, 204);
    let mut rest = Received::default();
    ws.read_until(&mut rest, |_| false).await;
    assert_eq!(
        rest.goodbye.expect("a goodbye")["reason"],
        "session_deleted"
    );
}
