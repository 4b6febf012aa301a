#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The store's tests: one suite ([`suite`]) run against SQLite and against the PostgreSQL on
//! this machine, plus what only one backend has ([`sqlite_only`], [`postgres_only`]).

mod postgres_only;
mod sqlite_only;
mod suite;
mod support;

/// Instantiates every case of the suite for both backends.
macro_rules! for_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let ctx = crate::support::sqlite().await;
                    crate::suite::$case(&ctx).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let ctx = crate::support::postgres().await;
                    crate::suite::$case(&ctx).await;
                }
            )*
        }
    };
}

for_both_backends!(
    create_append_read,
    create_run_checks_its_input,
    create_run_with_its_first_events,
    concurrent_appenders_get_a_gap_free_log,
    conflict_writes_nothing,
    failures_in_a_group_are_isolated,
    projections_follow_a_realistic_run,
    artifact_without_body_writes_nothing,
    event_for_unknown_step_writes_nothing,
    resolve_run_by_prefix,
    list_runs_filters_and_pages,
    projects_are_created_once,
    wait_for_events_is_woken_by_another_task,
    wait_for_events_is_woken_by_another_store,
    reopen_finds_everything,
    schema_too_new_is_refused,
    usage_breakdown_splits_a_run_and_sums_to_it,
    project_usage_totals_each_project,
    model_stats_per_agent_and_model_with_filters,
    repositories_are_added_listed_read_and_removed,
    a_taken_repository_name_is_refused,
    bad_repository_names_are_refused,
    tenants_own_projects_and_runs,
    tokens_are_stored_found_touched_and_revoked,
    rate_limits_read_and_print,
    runs_are_deleted_whole_once_finished,
    projects_are_renamed_and_archived,
    projects_are_deleted_with_their_finished_runs,
    totals_count_runs_steps_and_calls,
    settled_conflicts_are_kept_per_project,
    sessions_are_kept_changed_and_acknowledged,
);
