//! `botarmy token create|list|revoke` and the rule that `botarmy serve` listens beyond this
//! machine only with authentication configured.

use crate::support::*;

#[test]
fn a_token_is_shown_once_listed_without_its_secret_and_revoked() {
    let s = Sandbox::new();
    let o = ok(s.cmd().args([
        "token",
        "create",
        "--tenant",
        "acme",
        "--name",
        "ci",
        "--rate-limit",
        "2/min",
    ]));
    let secret = stdout(&o).trim().to_string();
    assert!(secret.starts_with("bat_") && secret.len() == 68, "{secret}");
    assert!(
        stderr(&o).contains("shown only this once"),
        "{}",
        stderr(&o)
    );

    let o = ok(s.cmd().args([
        "token", "create", "--tenant", "globex", "--name", "bot", "--json",
    ]));
    let made = json(&o);
    let other_secret = made["token"].as_str().unwrap().to_string();
    assert!(other_secret.starts_with("bat_"));
    assert_eq!(made["tenant"], "globex");

    // Lists never show a secret (nor its hash).
    let o = ok(s.cmd().args(["token", "list"]));
    let text = stdout(&o);
    assert!(
        text.contains("acme") && text.contains("globex") && text.contains("2/min"),
        "{text}"
    );
    assert!(!text.contains(&secret[4..]) && !text.contains(&other_secret[4..]));
    let o = ok(s
        .cmd()
        .args(["token", "list", "--tenant", "acme", "--json"]));
    let listed = json(&o);
    let tokens = listed.as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["name"], "ci");
    assert_eq!(tokens[0]["rate_limit"], "2/min");
    assert_eq!(tokens[0]["revoked_at"], serde_json::Value::Null);
    assert!(tokens[0].get("hash").is_none() && tokens[0].get("token").is_none());
    let raw = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!raw.contains(&secret[4..]));

    // The database (file and write-ahead log) holds the token, but not its secret.
    let id = tokens[0]["id"].as_str().unwrap();
    let mut db = std::fs::read(s.db_path()).unwrap();
    let wal = s.db_path().with_extension("db-wal");
    if wal.exists() {
        db.extend(std::fs::read(wal).unwrap());
    }
    let db_text = String::from_utf8_lossy(&db);
    assert!(db_text.contains(id), "the token's row is in what was read");
    assert!(!db_text.contains(&secret[4..]));

    let o = ok(s.cmd().args(["token", "revoke", id]));
    assert!(stdout(&o).contains("revoked"), "{}", stdout(&o));
    let o = ok(s
        .cmd()
        .args(["token", "list", "--tenant", "acme", "--json"]));
    assert!(json(&o)[0]["revoked_at"].is_i64());

    // Mistakes are named.
    let o = run(s.cmd().args(["token", "revoke", "tok_nope"]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("tok_nope"), "{}", stderr(&o));
    let o = run(s.cmd().args([
        "token",
        "create",
        "--tenant",
        "acme",
        "--name",
        "x",
        "--rate-limit",
        "fast",
    ]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("N/min"), "{}", stderr(&o));
    let o = run(s
        .cmd()
        .args(["token", "create", "--tenant", "a b", "--name", "x"]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("tenant"), "{}", stderr(&o));
}

#[test]
fn serve_refuses_a_public_address_without_authentication() {
    let s = Sandbox::new();
    let o = run(s.cmd().args(["serve", "--addr", "0.0.0.0:0"]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("refusing to listen on 0.0.0.0:0"), "{err}");
    assert!(err.contains("[server.auth]"), "{err}");

    // A bad [server.auth] is named before anything starts.
    let config = s.out("botarmy.toml");
    std::fs::write(
        &config,
        "[server.auth]\ntokens = true\nrate_limit = \"lots\"\n",
    )
    .unwrap();
    let o = run(s
        .cmd()
        .env("BOTARMY_CONFIG", &config)
        .args(["serve", "--addr", "0.0.0.0:0"]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("[server.auth] rate_limit"), "{err}");
    std::fs::write(
        &config,
        "[server.auth.oidc]\nissuer = \"https://id.example/\"\naudience = \"api\"\n\
         jwks_url = \"http://id.example/jwks\"\ntenant_claim = \"org_id\"\n",
    )
    .unwrap();
    let o = run(s
        .cmd()
        .env("BOTARMY_CONFIG", &config)
        .args(["serve", "--addr", "0.0.0.0:0"]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("https://"), "{}", stderr(&o));
}
