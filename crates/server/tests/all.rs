#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The server over real HTTP and WebSocket connections, on SQLite and on the PostgreSQL of
//! this machine: every case runs against both.

mod support;

mod approvals;
mod auth;
mod browser;
mod control;
mod errors;
mod fuzz;
mod manage;
mod repositories;
mod rest;
mod sessions;
mod stream;

/// Instantiates each case for both backends.
macro_rules! on_both_backends {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::$module::$case(crate::support::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::$module::$case(crate::support::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    rest::health_ready_version_and_openapi,
    rest::projects_are_created_listed_and_read,
    rest::a_finished_run_reads_back_whole,
    rest::events_are_paged,
    sessions::sessions_keep_tabs_and_ui_state,
    sessions::a_reconnecting_session_gets_what_it_missed,
    sessions::a_session_follows_tabs_opened_while_connected,
    stream::a_run_is_followed_to_completion,
    stream::a_dropped_client_resumes_without_gap_or_duplicate,
    stream::two_clients_at_different_offsets,
    stream::a_finished_run_streams_its_log_and_closes,
    stream::a_slow_client_is_told_and_disconnected,
    stream::shutdown_says_goodbye_and_pauses_runs,
    stream::clients_joining_mid_run_see_each_event_once,
    stream::a_run_driven_elsewhere_is_streamed_from_the_store,
    stream::a_project_stream_follows_its_runs_and_resumes_each,
    stream::a_restarted_server_resumes_the_run_and_the_stream,
    errors::bad_bodies_name_the_field,
    errors::bad_ids_queries_and_missing_things,
    errors::limits_and_media_types,
    approvals::a_gate_is_rejected_with_feedback_then_approved_over_the_api,
    approvals::a_conflict_mediation_cannot_settle_is_decided_over_the_api,
    control::pause_resume_and_cancel,
    control::a_queued_step_shows_what_it_waits_for,
    repositories::repositories_are_registered_listed_read_and_removed,
    repositories::bad_repository_requests_name_the_field,
    repositories::a_run_waiting_on_its_setup_is_answered_over_the_api,
    auth::requests_without_a_valid_token_are_refused,
    auth::no_tenant_reaches_another_tenants_things,
    auth::a_token_over_its_rate_limit_gets_429,
    auth::jwts_of_the_issuer_are_accepted_and_others_refused,
    manage::projects_are_updated_and_deleted,
    manage::a_run_is_deleted_once_finished_and_its_versions_listed,
    manage::definitions_of_the_builtin_method,
    manage::metrics_are_exposed_and_move,
    browser::pages_of_other_origins_cannot_read_or_drive_the_server,
    browser::the_rules_hold_with_authentication_and_cors_opens_only_for_configured_origins,
);
