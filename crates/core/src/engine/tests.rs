//! Table tests and property tests of the engine: a simulated runtime performs the engine's
//! actions with random outcomes (success, retryable and fatal failures, crashes, pauses) and
//! the properties are checked on every prefix of the resulting log.

use botarmy_protocol::{
    ArtifactId, ArtifactKind, ArtifactRef, Assessment, ErrorInfo, ErrorKind, Event, EventRecord,
    GatePolicy, HitlDecision, Plan, PlanGate, PlanStep, ProjectId, RunId, RunOptions, RunRequest,
    RunStatus, Score, StepStatus, ToolCall, Usage, WorktreeInfo,
};
use proptest::prelude::*;

use super::{Action, RunState, WorkspaceState};

fn plan(deps: &[&[u32]], optional: &[bool]) -> Plan {
    Plan {
        workflow_id: "test".into(),
        workflow_name: "Test".into(),
        cycle_type: "sdlc".into(),
        method_digest: "0".into(),
        steps: deps
            .iter()
            .enumerate()
            .map(|(i, d)| PlanStep {
                key: format!("step-{i}"),
                title: format!("Step {i}"),
                phase: None,
                agent: "analyst".into(),
                creates: Some(format!("doc-{i}.md")),
                template: None,
                requires: Vec::new(),
                depends_on: d.to_vec(),
                optional: optional.get(i).copied().unwrap_or(false),
                condition: None,
                instruction: None,
                notes: None,
                tools: Vec::new(),
                max_turns: None,
                kind: Default::default(),
            })
            .collect(),
        gates: Vec::new(),
    }
}

/// A plan whose steps marked `true` call tools (and so work in the run's worktree).
fn plan_with_tools(deps: &[&[u32]], tools: &[bool]) -> Plan {
    let mut plan = plan(deps, &[]);
    for (step, uses) in plan.steps.iter_mut().zip(tools) {
        if *uses {
            step.tools = vec!["file_write".into()];
        }
    }
    plan
}

fn worktree() -> WorktreeInfo {
    WorktreeInfo {
        repository: "project".into(),
        repo_path: "/repos/r".into(),
        path: "/worktrees/r/project".into(),
        branch: "botarmy/r".into(),
    }
}

struct Log {
    run_id: RunId,
    records: Vec<EventRecord>,
    state: RunState,
}

impl Log {
    fn new(plan: Plan, options: RunOptions) -> Self {
        let run_id = RunId::new();
        let mut log = Self {
            run_id,
            records: Vec::new(),
            state: RunState::new(run_id),
        };
        log.push(Event::PipelineCreated {
            project_id: ProjectId::new(),
            request: RunRequest {
                idea: "an idea".into(),
                workflow: "test".into(),
                method: "builtin".into(),
                options,
            },
            plan,
        })
        .unwrap();
        log
    }

    fn push(&mut self, event: Event) -> Result<(), super::EngineError> {
        let record = EventRecord {
            run_id: self.run_id,
            seq: self.state.last_seq + 1,
            at: 1_000 + self.state.last_seq as i64,
            event,
        };
        self.state.apply(&record)?;
        self.records.push(record);
        Ok(())
    }

    /// Performs an action the way the runtime does (append its opening event).
    fn perform(&mut self, action: &Action) {
        let event = match action {
            Action::StartRun => Event::PipelineStarted {
                cycle_type: "sdlc".into(),
                workflow: "test".into(),
            },
            Action::StartStep { step, attempt, .. } => Event::StepStarted {
                step: *step,
                attempt: *attempt,
                agent: "analyst".into(),
            },
            Action::SkipStep { step, reason } => Event::StepSkipped {
                step: *step,
                reason: reason.clone(),
            },
            Action::CompleteRun { usage } => Event::PipelineCompleted {
                usage: *usage,
                duration_ms: 1,
            },
            Action::FailRun { error, step } => Event::PipelineFailed {
                error: error.clone(),
                step: *step,
            },
            Action::PrepareWorkspace { repositories, .. } => {
                self.push(Event::WorktreeSessionCreating {
                    repositories: repositories.clone(),
                })
                .unwrap();
                self.push(Event::WorktreeRepoCreated {
                    worktree: worktree(),
                })
                .unwrap();
                Event::WorktreeSessionReady {
                    worktrees: vec![worktree()],
                }
            }
            // Approved on the spot, as `--yes` does.
            Action::RequestApproval {
                gate,
                title,
                steps,
                reasons,
                confidence,
                quality,
            } => {
                self.push(Event::HitlRequested {
                    gate: *gate,
                    kind: "approval".into(),
                    title: title.clone(),
                    steps: steps.clone(),
                    reasons: reasons.clone(),
                    confidence: *confidence,
                    quality: *quality,
                })
                .unwrap();
                Event::HitlResolved {
                    gate: *gate,
                    decision: HitlDecision::Approved,
                    feedback: None,
                    by: "test".into(),
                }
            }
            Action::CleanWorkspace { worktrees } => Event::WorktreeSessionCleaned {
                removed: worktrees.iter().map(|w| w.path.clone()).collect(),
            },
        };
        self.push(event).unwrap();
    }

    /// The step's model asks for a tool call (one LLM call), which completes.
    fn call_tool(&mut self, step: u32) {
        let s = &self.state.steps[step as usize];
        let (attempt, call, tool_call) =
            (s.attempt, s.calls.len() as u32, s.tool_calls.len() as u32);
        let asked = ToolCall {
            id: format!("call-{call}"),
            name: "file_write".into(),
            arguments: serde_json::json!({"path": "a.txt", "content": "a"}),
        };
        self.push(Event::LlmCallCompleted {
            step,
            attempt,
            call,
            provider: "p".into(),
            model: "m".into(),
            request_hash: "h".into(),
            response: String::new(),
            tool_calls: vec![asked.clone()],
            usage: Usage::default(),
            latency_ms: 1,
        })
        .unwrap();
        for event in [
            Event::ToolCallStarted {
                step,
                attempt,
                call: tool_call,
                id: asked.id.clone(),
                tool: asked.name.clone(),
                arguments: asked.arguments.clone(),
            },
            Event::ToolCallCompleted {
                step,
                attempt,
                call: tool_call,
                id: asked.id,
                tool: asked.name,
                is_error: false,
                summary: "created a.txt".into(),
                result: "created a.txt (1 bytes)".into(),
                duration_ms: 1,
            },
        ] {
            self.push(event).unwrap();
        }
    }

    fn complete_step(&mut self, step: u32, calls: u32) {
        let attempt = self.state.steps[step as usize].attempt;
        let done = self.state.steps[step as usize].calls.len() as u32;
        for call in done..calls {
            self.push(Event::LlmCallCompleted {
                step,
                attempt,
                call,
                provider: "local".into(),
                model: "m".into(),
                request_hash: format!("h{step}-{call}"),
                response: "text".into(),
                tool_calls: Vec::new(),
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 5,
                    ..Usage::default()
                },
                latency_ms: 1,
            })
            .unwrap();
        }
        let name = format!("doc-{step}.md");
        let version = self.state.artifacts.get(&name).map_or(1, |a| a.version + 1);
        self.push(Event::ArtifactCreated {
            step,
            artifact: ArtifactRef {
                id: ArtifactId::new(),
                name,
                kind: ArtifactKind::Document,
                version,
                sha256: "00".into(),
                bytes: 4,
            },
        })
        .unwrap();
        self.push(Event::StepCompleted {
            step,
            attempt,
            usage: Usage::default(),
            duration_ms: 1,
            assessment: None,
        })
        .unwrap();
    }

    /// Drives the run like a runtime whose steps all succeed, until nothing is left to do.
    fn drive_to_end(&mut self) {
        for _ in 0..1_000 {
            let actions = self.state.next_actions();
            if actions.is_empty() {
                let running: Vec<u32> = self.state.running_steps().collect();
                if running.is_empty() {
                    return;
                }
                for step in running {
                    self.complete_step(step, 1);
                }
                continue;
            }
            for action in &actions {
                self.perform(action);
            }
        }
        panic!("the run did not finish");
    }
}

#[test]
fn a_linear_run_starts_steps_in_order_and_completes() {
    let mut log = Log::new(plan(&[&[], &[0], &[1]], &[]), RunOptions::default());
    assert_eq!(log.state.next_actions(), vec![Action::StartRun]);
    log.perform(&Action::StartRun);
    assert_eq!(
        log.state.next_actions(),
        vec![Action::StartStep {
            step: 0,
            attempt: 1,
            resume: false
        }]
    );
    log.perform(&Action::StartStep {
        step: 0,
        attempt: 1,
        resume: false,
    });
    assert!(
        log.state.next_actions().is_empty(),
        "step 1 waits for step 0"
    );
    log.complete_step(0, 2);
    assert_eq!(
        log.state.next_actions(),
        vec![Action::StartStep {
            step: 1,
            attempt: 1,
            resume: false
        }]
    );
    log.drive_to_end();
    assert_eq!(log.state.status, RunStatus::Succeeded);
    assert_eq!(log.state.usage.calls, 4);
    assert_eq!(log.state.usage.input_tokens, 40);
    assert_eq!(log.state.artifacts.len(), 3);
}

#[test]
fn independent_steps_run_in_parallel_up_to_the_limit() {
    let options = RunOptions {
        max_parallel: 2,
        ..RunOptions::default()
    };
    let mut log = Log::new(plan(&[&[], &[0], &[0], &[0], &[1, 2, 3]], &[]), options);
    log.perform(&Action::StartRun);
    log.perform(&Action::StartStep {
        step: 0,
        attempt: 1,
        resume: false,
    });
    log.complete_step(0, 1);
    let actions = log.state.next_actions();
    assert_eq!(
        actions,
        vec![
            Action::StartStep {
                step: 1,
                attempt: 1,
                resume: false
            },
            Action::StartStep {
                step: 2,
                attempt: 1,
                resume: false
            },
        ]
    );
    for a in &actions {
        log.perform(a);
    }
    assert!(log.state.next_actions().is_empty(), "both slots are taken");
    log.complete_step(2, 1);
    assert_eq!(
        log.state.next_actions(),
        vec![Action::StartStep {
            step: 3,
            attempt: 1,
            resume: false
        }]
    );
}

#[test]
fn a_retryable_failure_is_retried_then_fails_the_run() {
    let options = RunOptions {
        max_attempts: 2,
        ..RunOptions::default()
    };
    let mut log = Log::new(plan(&[&[]], &[]), options);
    log.perform(&Action::StartRun);
    let transient = ErrorInfo::new(ErrorKind::Transient, "timeout");
    log.perform(&Action::StartStep {
        step: 0,
        attempt: 1,
        resume: false,
    });
    log.push(Event::StepFailed {
        step: 0,
        attempt: 1,
        error: transient.clone(),
    })
    .unwrap();
    assert_eq!(log.state.steps[0].status, StepStatus::Pending);
    assert_eq!(
        log.state.next_actions(),
        vec![Action::StartStep {
            step: 0,
            attempt: 2,
            resume: false
        }]
    );
    log.perform(&Action::StartStep {
        step: 0,
        attempt: 2,
        resume: false,
    });
    log.push(Event::StepFailed {
        step: 0,
        attempt: 2,
        error: transient,
    })
    .unwrap();
    let actions = log.state.next_actions();
    let [
        Action::FailRun {
            error,
            step: Some(0),
        },
    ] = actions.as_slice()
    else {
        panic!("expected the run to fail, got {actions:?}");
    };
    assert!(error.message.contains("step-0"), "{}", error.message);
    assert!(error.message.contains("2 attempt"), "{}", error.message);
}

#[test]
fn a_fatal_failure_waits_for_running_steps_before_failing_the_run() {
    let mut log = Log::new(plan(&[&[], &[]], &[]), RunOptions::default());
    log.perform(&Action::StartRun);
    for a in log.state.next_actions() {
        log.perform(&a);
    }
    let fatal = ErrorInfo::new(ErrorKind::Fatal, "missing variable");
    log.push(Event::StepFailed {
        step: 0,
        attempt: 1,
        error: fatal,
    })
    .unwrap();
    assert_eq!(
        log.state.steps[0].status,
        StepStatus::Failed,
        "fatal errors are not retried"
    );
    assert!(
        log.state.next_actions().is_empty(),
        "step 1 is still running"
    );
    log.complete_step(1, 1);
    assert!(matches!(
        log.state.next_actions().as_slice(),
        [Action::FailRun { step: Some(0), .. }]
    ));
}

#[test]
fn an_interrupted_step_resumes_with_its_recorded_calls() {
    let mut log = Log::new(plan(&[&[]], &[]), RunOptions::default());
    log.perform(&Action::StartRun);
    log.perform(&Action::StartStep {
        step: 0,
        attempt: 1,
        resume: false,
    });
    log.push(Event::LlmCallCompleted {
        step: 0,
        attempt: 1,
        call: 0,
        provider: "local".into(),
        model: "m".into(),
        request_hash: "h".into(),
        response: "first".into(),
        tool_calls: Vec::new(),
        usage: Usage::default(),
        latency_ms: 1,
    })
    .unwrap();
    log.push(Event::StepInterrupted {
        step: 0,
        attempt: 1,
    })
    .unwrap();
    assert_eq!(
        log.state.next_actions(),
        vec![Action::StartStep {
            step: 0,
            attempt: 1,
            resume: true
        }]
    );
    log.perform(&Action::StartStep {
        step: 0,
        attempt: 1,
        resume: true,
    });
    assert_eq!(
        log.state.steps[0].calls.len(),
        1,
        "the completed call is kept for reuse"
    );
    assert_eq!(log.state.steps[0].calls[0].response, "first");
    log.complete_step(0, 2);
    assert_eq!(log.state.usage.calls, 2);
}

#[test]
fn optional_steps_are_skipped_unless_asked_for() {
    let mut log = Log::new(plan(&[&[], &[0]], &[false, true]), RunOptions::default());
    log.drive_to_end();
    assert_eq!(log.state.status, RunStatus::Succeeded);
    assert_eq!(log.state.steps[1].status, StepStatus::Skipped);

    let options = RunOptions {
        run_optional: true,
        ..RunOptions::default()
    };
    let mut log = Log::new(plan(&[&[], &[0]], &[false, true]), options);
    log.drive_to_end();
    assert_eq!(log.state.steps[1].status, StepStatus::Succeeded);
}

#[test]
fn paused_and_waiting_runs_ask_for_nothing_until_resumed() {
    let mut log = Log::new(plan(&[&[]], &[]), RunOptions::default());
    log.perform(&Action::StartRun);
    log.push(Event::PipelinePaused {
        reason: "user".into(),
    })
    .unwrap();
    assert!(log.state.next_actions().is_empty());
    log.push(Event::PipelineResumed {}).unwrap();
    log.push(Event::PipelineWaiting {
        reason: "budget".into(),
    })
    .unwrap();
    assert!(log.state.next_actions().is_empty());
    assert_eq!(log.state.reason.as_deref(), Some("budget"));
    log.push(Event::PipelineResumed {}).unwrap();
    assert_eq!(log.state.next_actions().len(), 1);
}

#[test]
fn restarting_a_step_resets_it_and_its_dependants_only() {
    let mut log = Log::new(plan(&[&[], &[0], &[], &[1]], &[]), RunOptions::default());
    log.drive_to_end();
    assert_eq!(log.state.status, RunStatus::Succeeded);
    // A finished run is closed; restart happens on a run still open, so rebuild one.
    let mut log = Log::new(plan(&[&[], &[0], &[], &[1]], &[]), RunOptions::default());
    log.perform(&Action::StartRun);
    for step in [0, 1, 2] {
        if log.state.steps[step as usize].status == StepStatus::Pending {
            log.perform(&Action::StartStep {
                step,
                attempt: 1,
                resume: false,
            });
        }
        log.complete_step(step, 1);
    }
    log.push(Event::StepRestarted {
        step: 1,
        reason: "feedback".into(),
        feedback: None,
        by: None,
    })
    .unwrap();
    let statuses: Vec<StepStatus> = log.state.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        vec![
            StepStatus::Succeeded,
            StepStatus::Pending,
            StepStatus::Succeeded,
            StepStatus::Pending
        ]
    );
    assert_eq!(
        log.state.next_actions(),
        vec![Action::StartStep {
            step: 1,
            attempt: 2,
            resume: false
        }]
    );
    log.drive_to_end();
    assert_eq!(log.state.artifacts["doc-1.md"].version, 2);
}

#[test]
fn invalid_events_are_rejected_and_leave_the_state_unchanged() {
    let mut log = Log::new(plan(&[&[], &[0]], &[]), RunOptions::default());
    let before = log.state.clone();
    let bad = [
        Event::StepStarted {
            step: 0,
            attempt: 1,
            agent: "a".into(),
        }, // run not started
        Event::PipelineResumed {}, // never started
        Event::PipelineCompleted {
            usage: Usage::default(),
            duration_ms: 0,
        },
    ];
    for event in bad {
        let name = event.name();
        assert!(log.push(event).is_err(), "{name} must be rejected");
        assert_eq!(log.state, before);
    }
    log.perform(&Action::StartRun);
    for event in [
        Event::StepStarted {
            step: 7,
            attempt: 1,
            agent: "a".into(),
        },
        Event::StepStarted {
            step: 0,
            attempt: 2,
            agent: "a".into(),
        },
        Event::StepCompleted {
            step: 0,
            attempt: 1,
            usage: Usage::default(),
            duration_ms: 0,
            assessment: None,
        },
        Event::StepInterrupted {
            step: 0,
            attempt: 1,
        },
    ] {
        let before = log.state.clone();
        assert!(log.push(event).is_err());
        assert_eq!(log.state, before);
    }
    let record = EventRecord {
        run_id: log.run_id,
        seq: log.state.last_seq + 2,
        at: 0,
        event: Event::PipelineResumed {},
    };
    assert!(matches!(
        log.state.apply(&record),
        Err(super::EngineError::OutOfSequence { .. })
    ));
}

#[test]
fn a_plan_whose_dependencies_point_forward_is_rejected() {
    let run_id = RunId::new();
    let mut state = RunState::new(run_id);
    let record = EventRecord {
        run_id,
        seq: 1,
        at: 0,
        event: Event::PipelineCreated {
            project_id: ProjectId::new(),
            request: RunRequest {
                idea: "x".into(),
                workflow: "t".into(),
                method: "builtin".into(),
                options: RunOptions::default(),
            },
            plan: plan(&[&[1], &[]], &[]),
        },
    };
    let err = state.apply(&record).unwrap_err().to_string();
    assert!(err.contains("depends on step 1"), "{err}");
}

/// A random outcome the simulated runtime picks for a running step.
#[derive(Debug, Clone)]
enum Outcome {
    Complete { calls: u32 },
    Fail { retryable: bool },
    Crash,
    PauseResume,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        6 => (0u32..3).prop_map(|calls| Outcome::Complete { calls }),
        2 => any::<bool>().prop_map(|retryable| Outcome::Fail { retryable }),
        1 => Just(Outcome::Crash),
        1 => Just(Outcome::PauseResume),
    ]
}

/// Dependencies, optional flags, and which steps call tools (work in the worktree).
type RandomPlan = (Vec<Vec<u32>>, Vec<bool>, Vec<bool>);

fn random_plan() -> impl Strategy<Value = RandomPlan> {
    (1usize..8)
        .prop_flat_map(|n| {
            let deps = (0..n)
                .map(|i| proptest::collection::vec(0..(i.max(1) as u32), 0..=i.min(3)))
                .collect::<Vec<_>>();
            (
                deps,
                proptest::collection::vec(proptest::bool::weighted(0.2), n),
                proptest::collection::vec(proptest::bool::weighted(0.3), n),
            )
        })
        .prop_map(|(mut deps, optional, tools)| {
            for (i, d) in deps.iter_mut().enumerate() {
                d.retain(|x| (*x as usize) < i);
                d.sort_unstable();
                d.dedup();
            }
            (deps, optional, tools)
        })
}

/// Simulates a runtime with random outcomes; returns the log and, for every prefix length,
/// the actions the live state asked for.
fn simulate(
    (deps, optional, tools): &RandomPlan,
    options: RunOptions,
    outcomes: &[Outcome],
) -> (Log, Vec<(u64, Vec<Action>)>) {
    let deps: Vec<&[u32]> = deps.iter().map(Vec::as_slice).collect();
    let max_parallel = options.max_parallel as usize;
    let mut plan = plan_with_tools(&deps, tools);
    for (step, opt) in plan.steps.iter_mut().zip(optional) {
        step.optional = *opt;
    }
    // Every other step has a gate that always asks (and the simulated human approves).
    plan.gates = (0..plan.steps.len() as u32)
        .step_by(2)
        .map(|i| PlanGate {
            key: format!("gate-{i}"),
            title: format!("gate {i}"),
            steps: vec![i],
            policy: Some(GatePolicy::Always),
            timeout: None,
        })
        .collect();
    let mut log = Log::new(plan, options);
    let mut asked = Vec::new();
    // After the random outcomes, every step succeeds, so every run must end.
    let settle = Outcome::Complete { calls: 1 };
    let mut outcomes = outcomes.iter().chain(std::iter::repeat(&settle));
    for _ in 0..500 {
        let actions = log.state.next_actions();
        asked.push((log.state.last_seq, actions.clone()));
        if !actions.is_empty() {
            for action in &actions {
                if let Action::StartStep { step, .. } = action {
                    let p = &log.state.plan.as_ref().unwrap().steps[*step as usize];
                    for d in &p.depends_on {
                        assert!(log.state.steps[*d as usize].status.satisfies_dependants());
                    }
                }
                log.perform(action);
            }
            assert!(log.state.running_steps().count() <= max_parallel);
            let steps = &log.state.plan.as_ref().unwrap().steps;
            assert!(
                log.state
                    .running_steps()
                    .filter(|s| steps[*s as usize].needs_worktree())
                    .count()
                    <= 1,
                "steps in the worktree take turns"
            );
            continue;
        }
        let Some(step) = log.state.running_steps().next() else {
            break;
        };
        let attempt = log.state.steps[step as usize].attempt;
        if tools[step as usize] {
            assert!(
                matches!(log.state.workspace, WorkspaceState::Ready(_)),
                "a step in the worktree runs only once it is ready"
            );
        }
        match outcomes.next().unwrap() {
            Outcome::Complete { calls } if tools[step as usize] => {
                log.call_tool(step);
                log.complete_step(step, *calls + 1);
            }
            Outcome::Complete { calls } => log.complete_step(step, *calls),
            Outcome::Fail { retryable } => {
                let kind = if *retryable {
                    ErrorKind::Transient
                } else {
                    ErrorKind::Fatal
                };
                log.push(Event::StepFailed {
                    step,
                    attempt,
                    error: ErrorInfo::new(kind, "boom"),
                })
                .unwrap();
            }
            Outcome::Crash => {
                let running: Vec<u32> = log.state.running_steps().collect();
                for s in running {
                    let attempt = log.state.steps[s as usize].attempt;
                    log.push(Event::StepInterrupted { step: s, attempt })
                        .unwrap();
                }
                log.push(Event::PipelineResumed {}).unwrap();
            }
            Outcome::PauseResume => {
                log.push(Event::PipelinePaused {
                    reason: "user".into(),
                })
                .unwrap();
                assert!(log.state.next_actions().is_empty());
                log.push(Event::PipelineResumed {}).unwrap();
            }
        }
    }
    (log, asked)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn folding_a_log_gives_the_same_state_and_the_same_next_actions(
        random in random_plan(),
        max_parallel in 1u32..4,
        max_attempts in 1u32..4,
        run_optional in any::<bool>(),
        outcomes in proptest::collection::vec(outcome(), 1..20),
    ) {
        let options = RunOptions { max_parallel, max_attempts, run_optional, ..RunOptions::default() };
        let (log, asked) = simulate(&random, options, &outcomes);
        let optional = &random.1;

        // The run always ends, and ends consistently.
        prop_assert!(log.state.status.is_terminal(), "run ended {:?}", log.state.status);
        if log.state.status == RunStatus::Succeeded {
            prop_assert!(log.state.steps.iter().all(|s| s.status.satisfies_dependants()));
        }
        // A run whose worktrees were made removes them before it ends.
        if log.records.iter().any(|r| r.event.name() == "worktree_session_ready") {
            prop_assert!(matches!(log.state.workspace, WorkspaceState::Cleaned(_)));
        }
        for (s, opt) in log.state.steps.iter().zip(optional) {
            prop_assert!(s.attempt <= max_attempts);
            if *opt && !run_optional {
                prop_assert_ne!(s.status, StepStatus::Succeeded);
            }
        }

        // Folding the log (also after a JSON round trip) gives the same state.
        let json: Vec<String> = log.records.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
        let decoded: Vec<EventRecord> = json.iter().map(|j| serde_json::from_str(j).unwrap()).collect();
        prop_assert_eq!(&decoded, &log.records);
        let rebuilt = RunState::from_events(log.run_id, &decoded).unwrap();
        prop_assert_eq!(&rebuilt, &log.state);

        // Rebuilding from any prefix of the log gives the actions the live run asked for.
        for (seq, actions) in &asked {
            let prefix = RunState::from_events(log.run_id, &log.records[..*seq as usize]).unwrap();
            prop_assert_eq!(&prefix.next_actions(), actions);
        }
    }

    #[test]
    fn a_rejected_event_never_changes_the_state(
        random in random_plan(),
        outcomes in proptest::collection::vec(outcome(), 1..10),
        cut in 0usize..1000,
        step in 0u32..10,
        attempt in 0u32..4,
        kind in 0u8..9,
    ) {
        let (log, _) = simulate(&random, RunOptions::default(), &outcomes);
        let cut = 1 + cut % log.records.len();
        let mut state = RunState::from_events(log.run_id, &log.records[..cut]).unwrap();
        let event = match kind {
            0 => Event::StepStarted { step, attempt, agent: "a".into() },
            1 => Event::StepCompleted { step, attempt, usage: Usage::default(), duration_ms: 0, assessment: None },
            2 => Event::StepInterrupted { step, attempt },
            3 => Event::StepSkipped { step, reason: "r".into() },
            4 => Event::ToolCallCompleted { step, attempt, call: attempt, id: "c".into(), tool: "t".into(), is_error: false, summary: "s".into(), result: "r".into(), duration_ms: 0 },
            5 => Event::WorktreeSessionReady { worktrees: vec![worktree()] },
            6 => Event::InputProvided { kind: "worktree_setup".into(), answer: "run".into() },
            7 => Event::WorktreeSessionCleaned { removed: vec![] },
            _ => Event::PipelineStarted { cycle_type: "x".into(), workflow: "y".into() },
        };
        let before = state.clone();
        let record = EventRecord { run_id: log.run_id, seq: state.last_seq + 1, at: 0, event };
        if state.apply(&record).is_err() {
            prop_assert_eq!(state, before);
        }
    }
}

#[test]
fn steps_in_the_worktree_wait_for_it_take_turns_and_it_is_removed_before_the_end() {
    // Steps 1 and 2 call tools; step 0 does not and starts at once.
    let mut log = Log::new(
        plan_with_tools(&[&[], &[], &[]], &[false, true, true]),
        RunOptions::default(),
    );
    log.perform(&Action::StartRun);
    let actions = log.state.next_actions();
    assert_eq!(
        actions,
        vec![
            Action::StartStep {
                step: 0,
                attempt: 1,
                resume: false
            },
            Action::PrepareWorkspace {
                repositories: vec![],
                resume: false
            },
        ]
    );
    log.perform(&actions[0]);
    // While the worktrees are made, the action is asked for again (marked as a resume):
    // the runtime performs one at a time.
    log.push(Event::WorktreeSessionCreating {
        repositories: vec![],
    })
    .unwrap();
    assert_eq!(
        log.state.next_actions(),
        vec![Action::PrepareWorkspace {
            repositories: vec![],
            resume: true
        }]
    );
    log.push(Event::WorktreeRepoCreated {
        worktree: worktree(),
    })
    .unwrap();
    log.push(Event::WorktreeSessionReady {
        worktrees: vec![worktree()],
    })
    .unwrap();
    // Ready: one worktree step at a time, though slots are free.
    assert_eq!(
        log.state.next_actions(),
        vec![Action::StartStep {
            step: 1,
            attempt: 1,
            resume: false
        }]
    );
    log.perform(&Action::StartStep {
        step: 1,
        attempt: 1,
        resume: false,
    });
    assert!(log.state.next_actions().is_empty());
    log.call_tool(1);
    assert_eq!(log.state.steps[1].tool_calls.len(), 1);
    log.complete_step(1, 2);
    log.complete_step(0, 1);
    log.perform(&log.state.next_actions()[0].clone());
    log.complete_step(2, 1);
    // Everything done: the worktrees go first, then the run completes.
    assert_eq!(
        log.state.next_actions(),
        vec![Action::CleanWorkspace {
            worktrees: vec![worktree()]
        }]
    );
    log.drive_to_end();
    assert_eq!(log.state.status, RunStatus::Succeeded);
    assert!(matches!(log.state.workspace, WorkspaceState::Cleaned(_)));
}

#[test]
fn tool_calls_are_kept_across_an_interruption_and_dropped_by_a_new_attempt() {
    let options = RunOptions {
        max_attempts: 2,
        ..RunOptions::default()
    };
    let mut log = Log::new(plan_with_tools(&[&[]], &[true]), options);
    log.perform(&Action::StartRun);
    log.perform(&log.state.next_actions()[0].clone());
    log.perform(&log.state.next_actions()[0].clone());
    log.call_tool(0);
    // A tool call numbered out of order is refused.
    let wrong = Event::ToolCallCompleted {
        step: 0,
        attempt: 1,
        call: 5,
        id: "x".into(),
        tool: "bash".into(),
        is_error: false,
        summary: String::new(),
        result: String::new(),
        duration_ms: 0,
    };
    let err = log.push(wrong).unwrap_err().to_string();
    assert!(
        err.contains("tool call 5 completed but 1 tool calls"),
        "{err}"
    );
    log.push(Event::StepInterrupted {
        step: 0,
        attempt: 1,
    })
    .unwrap();
    log.perform(&Action::StartStep {
        step: 0,
        attempt: 1,
        resume: true,
    });
    assert_eq!(
        log.state.steps[0].tool_calls.len(),
        1,
        "kept for the resume"
    );
    assert_eq!(log.state.steps[0].calls[0].tool_calls.len(), 1);
    log.push(Event::StepFailed {
        step: 0,
        attempt: 1,
        error: ErrorInfo::new(ErrorKind::Transient, "flaky"),
    })
    .unwrap();
    log.perform(&Action::StartStep {
        step: 0,
        attempt: 2,
        resume: false,
    });
    assert!(
        log.state.steps[0].tool_calls.is_empty(),
        "a new attempt starts afresh"
    );
}

#[test]
fn a_run_that_needs_input_waits_and_takes_only_an_accepted_answer() {
    let mut log = Log::new(plan_with_tools(&[&[]], &[true]), RunOptions::default());
    log.perform(&Action::StartRun);
    log.push(Event::WorktreeSessionCreating {
        repositories: vec![],
    })
    .unwrap();
    log.push(Event::WorktreeRepoCreated {
        worktree: worktree(),
    })
    .unwrap();
    log.push(Event::PipelineNeedsInput {
        kind: "worktree_setup".into(),
        question: "run `cargo fetch`?".into(),
        options: vec!["run".into(), "skip".into()],
    })
    .unwrap();
    assert_eq!(log.state.status, RunStatus::Waiting);
    assert!(log.state.next_actions().is_empty());
    let err = log
        .push(Event::InputProvided {
            kind: "worktree_setup".into(),
            answer: "maybe".into(),
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`maybe` is not one of the accepted answers (run, skip)"),
        "{err}"
    );
    log.push(Event::InputProvided {
        kind: "worktree_setup".into(),
        answer: "skip".into(),
    })
    .unwrap();
    assert_eq!(log.state.status, RunStatus::Running);
    assert_eq!(log.state.answers["worktree_setup"], "skip");
    assert_eq!(
        log.state.next_actions(),
        vec![Action::PrepareWorkspace {
            repositories: vec![],
            resume: true
        }]
    );
    assert!(
        log.push(Event::InputProvided {
            kind: "worktree_setup".into(),
            answer: "run".into(),
        })
        .is_err(),
        "nothing is asked any more"
    );
}

#[test]
fn a_question_waits_for_an_answer_that_fits_and_survives_the_resume() {
    let mut log = Log::new(plan_with_tools(&[&[]], &[true]), RunOptions::default());
    log.perform(&Action::StartRun);
    log.perform(&log.state.next_actions()[0].clone());
    log.perform(&log.state.next_actions()[0].clone());
    log.call_tool(0);
    let ask = Event::ClarificationRequested {
        step: 0,
        attempt: 1,
        call: 1,
        question: "Which database?".into(),
        options: vec!["sqlite".into(), "postgres".into()],
    };
    log.push(ask.clone()).unwrap();
    assert_eq!(log.state.status, RunStatus::Waiting);
    assert!(log.push(ask).is_err(), "one question at a time");
    log.push(Event::StepInterrupted {
        step: 0,
        attempt: 1,
    })
    .unwrap();
    // A resume without the answer keeps the run waiting, and the step does not start.
    log.push(Event::PipelineResumed {}).unwrap();
    assert_eq!(log.state.status, RunStatus::Waiting);
    assert!(log.state.next_actions().is_empty());
    let answer = |answer: &str, call: u32| Event::ClarificationAnswered {
        step: 0,
        call,
        answer: answer.into(),
        by: "ada".into(),
    };
    let err = log.push(answer("mysql", 1)).unwrap_err().to_string();
    assert!(
        err.contains("not one of the accepted answers (sqlite, postgres)"),
        "{err}"
    );
    assert!(log.push(answer("postgres", 0)).is_err(), "the wrong call");
    log.push(answer("postgres", 1)).unwrap();
    assert_eq!(log.state.status, RunStatus::Running);
    assert_eq!(log.state.steps[0].answers[&1], "postgres");
    assert_eq!(
        log.state.next_actions(),
        vec![Action::StartStep {
            step: 0,
            attempt: 1,
            resume: true
        }]
    );
    log.perform(&log.state.next_actions()[0].clone());
    assert_eq!(
        log.state.steps[0].answers[&1], "postgres",
        "kept for the resumed attempt"
    );
    log.complete_step(0, 2);
    log.drive_to_end();
    assert_eq!(log.state.status, RunStatus::Succeeded);
}

fn score(value: f64) -> Option<Score> {
    Some(Score {
        value,
        reasons: vec![format!("scored {value}")],
    })
}

/// A plan of `deps` where a phase gate covers steps `covered` with `policy`.
fn gated(deps: &[&[u32]], covered: &[u32], policy: Option<GatePolicy>) -> Plan {
    let mut p = plan(deps, &[]);
    p.gates = vec![PlanGate {
        key: "phase:discovery".into(),
        title: "the Discovery phase".into(),
        steps: covered.to_vec(),
        policy,
        timeout: None,
    }];
    p
}

impl Log {
    /// Starts `step` (a fresh attempt) and completes it with these scores.
    fn finish_scored(&mut self, step: u32, confidence: Option<Score>, quality: Option<Score>) {
        let attempt = self.state.steps[step as usize].attempt + 1;
        self.perform(&Action::StartStep {
            step,
            attempt,
            resume: false,
        });
        self.push(Event::StepCompleted {
            step,
            attempt,
            usage: Usage::default(),
            duration_ms: 1,
            assessment: Some(Assessment {
                confidence,
                quality,
                checklist: Vec::new(),
                risks: Vec::new(),
            }),
        })
        .unwrap();
    }

    fn request(&mut self, action: &Action) {
        let Action::RequestApproval {
            gate,
            title,
            steps,
            reasons,
            confidence,
            quality,
        } = action
        else {
            panic!("not an approval request: {action:?}");
        };
        self.push(Event::HitlRequested {
            gate: *gate,
            kind: "approval".into(),
            title: title.clone(),
            steps: steps.clone(),
            reasons: reasons.clone(),
            confidence: *confidence,
            quality: *quality,
        })
        .unwrap();
    }
}

#[test]
fn a_gate_holds_the_next_phase_until_a_human_approves_low_confidence() {
    // Steps 0 and 1 form a phase; step 2 depends on step 1 and is outside the gate.
    let mut log = Log::new(
        gated(&[&[], &[0], &[1]], &[0, 1], None),
        RunOptions::default(),
    );
    log.perform(&Action::StartRun);
    log.finish_scored(0, score(0.5), score(0.9));
    // Inside the gate, step 1 does not wait for it.
    assert!(matches!(
        log.state.next_actions()[..],
        [Action::StartStep { step: 1, .. }]
    ));
    log.finish_scored(1, score(0.95), score(0.95));
    let actions = log.state.next_actions();
    let [
        Action::RequestApproval {
            gate: 0,
            reasons,
            confidence,
            quality,
            ..
        },
    ] = &actions[..]
    else {
        panic!("{actions:?}")
    };
    // The weakest step speaks for the gate.
    assert_eq!(*confidence, Some(0.5));
    assert_eq!(*quality, Some(0.9));
    assert_eq!(
        reasons,
        &["confidence 0.50 is below 0.80: `step-0`: scored 0.5"]
    );
    log.request(&actions[0]);
    assert_eq!(log.state.status, RunStatus::Waiting);
    assert!(log.state.next_actions().is_empty());
    let q = log.state.question().unwrap();
    assert_eq!((q.kind, q.gate), ("approval", Some(0)));
    assert_eq!(q.question, "Approve the Discovery phase?");
    // A resume without a decision keeps waiting.
    log.push(Event::PipelineResumed {}).unwrap();
    assert_eq!(log.state.status, RunStatus::Waiting);
    log.push(Event::HitlResolved {
        gate: 0,
        decision: HitlDecision::Approved,
        feedback: None,
        by: "ada".into(),
    })
    .unwrap();
    assert_eq!(log.state.status, RunStatus::Running);
    assert_eq!(log.state.gates[0].approved_by.as_deref(), Some("ada"));
    assert!(matches!(
        log.state.next_actions()[..],
        [Action::StartStep { step: 2, .. }]
    ));
    // Rebuilt from its log, the run is the same.
    assert_eq!(
        RunState::from_events(log.run_id, &log.records).unwrap(),
        log.state
    );
}

/// The workflow's policy, the run's, the confidence and quality, and whether it trips.
type GateCase = (
    Option<GatePolicy>,
    Option<GatePolicy>,
    Option<Score>,
    Option<Score>,
    bool,
);

#[test]
fn gates_trip_on_each_criterion_and_follow_the_policy_that_applies() {
    let cases: [GateCase; 8] = [
        // default thresholds: confidence 0.8, quality 0.85
        (None, None, score(0.9), score(0.9), false),
        (None, None, score(0.79), score(0.9), true),
        (None, None, score(0.9), score(0.84), true),
        (None, None, None, score(0.9), true),
        (Some(GatePolicy::Auto), None, score(0.1), score(0.1), false),
        (Some(GatePolicy::Always), None, score(1.0), score(1.0), true),
        // The run's policy overrides the workflow's.
        (
            Some(GatePolicy::Always),
            Some(GatePolicy::Auto),
            score(0.1),
            None,
            false,
        ),
        (
            None,
            Some(GatePolicy::parse("quality_below=0.5").unwrap()),
            score(0.1),
            score(0.6),
            false,
        ),
    ];
    for (i, (workflow, run, confidence, quality, trips)) in cases.into_iter().enumerate() {
        let options = RunOptions {
            gate_policy: run,
            ..RunOptions::default()
        };
        let mut log = Log::new(gated(&[&[], &[0]], &[0], workflow), options);
        log.perform(&Action::StartRun);
        log.finish_scored(0, confidence, quality);
        let actions = log.state.next_actions();
        let asked = matches!(actions[..], [Action::RequestApproval { .. }]);
        assert_eq!(asked, trips, "case {i}: {actions:?}");
        if !trips {
            assert!(
                matches!(actions[..], [Action::StartStep { step: 1, .. }]),
                "case {i}"
            );
        }
    }
}

#[test]
fn rejecting_with_feedback_reruns_the_step_and_its_dependants_and_asks_again() {
    let mut log = Log::new(gated(&[&[], &[0]], &[0], None), RunOptions::default());
    log.perform(&Action::StartRun);
    log.finish_scored(0, score(0.3), score(0.9));
    let actions = log.state.next_actions();
    log.request(&actions[0]);
    log.push(Event::HitlResolved {
        gate: 0,
        decision: HitlDecision::Rejected,
        feedback: Some("name the users".into()),
        by: "ada".into(),
    })
    .unwrap();
    log.push(Event::StepRestarted {
        step: 0,
        reason: "sent back".into(),
        feedback: Some("name the users".into()),
        by: Some("ada".into()),
    })
    .unwrap();
    assert_eq!(log.state.status, RunStatus::Running);
    assert_eq!(log.state.steps[0].feedback, ["name the users"]);
    assert_eq!(
        log.state.next_actions(),
        [Action::StartStep {
            step: 0,
            attempt: 2,
            resume: false
        }]
    );
    // The revised output is good enough: the gate lets it through this time.
    log.finish_scored(0, score(0.9), score(0.9));
    assert!(matches!(
        log.state.next_actions()[..],
        [Action::StartStep { step: 1, .. }]
    ));
    log.finish_scored(1, None, None);
    // Feedback on a finished step later on reruns it and what depends on it, and takes
    // back the gate's approval for outputs that change.
    log.push(Event::StepRestarted {
        step: 0,
        reason: "late feedback".into(),
        feedback: Some("and their goals".into()),
        by: Some("bo".into()),
    })
    .unwrap();
    let statuses: Vec<StepStatus> = log.state.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StepStatus::Pending, StepStatus::Pending]);
    assert_eq!(
        log.state.steps[0].feedback,
        ["name the users", "and their goals"]
    );
    log.finish_scored(0, score(0.2), score(0.9));
    assert!(matches!(
        log.state.next_actions()[..],
        [Action::RequestApproval { gate: 0, .. }]
    ));
}

#[test]
fn a_gate_event_that_does_not_fit_is_refused() {
    let mut log = Log::new(gated(&[&[], &[0]], &[0], None), RunOptions::default());
    log.perform(&Action::StartRun);
    let request = Event::HitlRequested {
        gate: 0,
        kind: "approval".into(),
        title: "t".into(),
        steps: vec![0],
        reasons: vec![],
        confidence: None,
        quality: None,
    };
    // Its step is not finished.
    assert!(log.push(request.clone()).is_err());
    log.finish_scored(0, score(0.1), score(0.1));
    let approve = Event::HitlResolved {
        gate: 0,
        decision: HitlDecision::Approved,
        feedback: None,
        by: "x".into(),
    };
    // Nothing was asked yet.
    assert!(log.push(approve.clone()).is_err());
    let mut wrong_steps = request.clone();
    if let Event::HitlRequested { steps, .. } = &mut wrong_steps {
        *steps = vec![1];
    }
    assert!(log.push(wrong_steps).is_err());
    log.push(request.clone()).unwrap();
    assert!(log.push(request).is_err(), "asked twice");
    log.push(approve.clone()).unwrap();
    assert!(log.push(approve).is_err(), "decided twice");
}

#[test]
fn a_run_does_not_complete_while_a_gate_waits() {
    let mut log = Log::new(gated(&[&[]], &[0], None), RunOptions::default());
    log.perform(&Action::StartRun);
    log.finish_scored(0, score(0.1), score(0.1));
    assert!(matches!(
        log.state.next_actions()[..],
        [Action::RequestApproval { .. }]
    ));
    let completes = Event::PipelineCompleted {
        usage: Usage::default(),
        duration_ms: 1,
    };
    log.request(&log.state.next_actions()[0].clone());
    assert!(log.state.next_actions().is_empty());
    log.push(Event::HitlResolved {
        gate: 0,
        decision: HitlDecision::Approved,
        feedback: None,
        by: "x".into(),
    })
    .unwrap();
    assert_eq!(
        log.state.next_actions(),
        [Action::CompleteRun {
            usage: log.state.usage
        }]
    );
    log.push(completes).unwrap();
}

#[test]
fn a_high_risk_holds_its_gate_until_acknowledged_unless_the_policy_is_auto() {
    for (policy, asks) in [(None, true), (Some(GatePolicy::Auto), false)] {
        let options = RunOptions {
            gate_policy: policy,
            ..RunOptions::default()
        };
        let mut log = Log::new(gated(&[&[], &[0]], &[0], None), options);
        log.perform(&Action::StartRun);
        log.perform(&Action::StartStep {
            step: 0,
            attempt: 1,
            resume: false,
        });
        let card = |title: &str, severity| botarmy_protocol::RiskCard {
            title: title.into(),
            severity,
            description: "d".into(),
            mitigation: "m".into(),
        };
        log.push(Event::StepCompleted {
            step: 0,
            attempt: 1,
            usage: Usage::default(),
            duration_ms: 1,
            assessment: Some(Assessment {
                confidence: score(0.99),
                quality: score(0.99),
                checklist: Vec::new(),
                risks: vec![
                    card("Data loss", botarmy_protocol::Severity::High),
                    card("Slow start", botarmy_protocol::Severity::Low),
                ],
            }),
        })
        .unwrap();
        let actions = log.state.next_actions();
        match &actions[..] {
            [Action::RequestApproval { reasons, .. }] => {
                assert!(asks);
                assert_eq!(
                    reasons,
                    &["high risk from `step-0`: Data loss (mitigation: m)"]
                );
            }
            [Action::StartStep { step: 1, .. }] => assert!(!asks),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_gate_timeout_falls_due_once_at_its_deadline() {
    let options = RunOptions {
        gate_timeout: Some(botarmy_protocol::GateTimeout {
            after: 3_600,
            then: botarmy_protocol::TimeoutAction::Remind,
        }),
        ..RunOptions::default()
    };
    let mut log = Log::new(gated(&[&[], &[0]], &[0], None), options);
    log.perform(&Action::StartRun);
    log.finish_scored(0, score(0.1), score(0.1));
    assert_eq!(log.state.next_deadline(), None, "nothing waits yet");
    let action = log.state.next_actions()[0].clone();
    log.request(&action);
    let asked_at = log.records.last().unwrap().at;
    assert_eq!(log.state.next_deadline(), Some(asked_at + 3_600_000));
    assert!(log.state.due_timeouts(asked_at + 3_599_999).is_empty());
    let due = log.state.due_timeouts(asked_at + 3_600_000);
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].0, due[0].2), (0, 3_600));
    log.push(Event::HitlTimedOut {
        gate: 0,
        action: botarmy_protocol::TimeoutAction::Remind,
        waited_secs: 3_600,
    })
    .unwrap();
    // A reminder keeps the gate waiting, and does not fire again.
    assert_eq!(log.state.status, RunStatus::Waiting);
    assert!(log.state.due_timeouts(asked_at + 99_000_000).is_empty());
    assert_eq!(log.state.next_deadline(), None);
    assert!(
        log.push(Event::HitlTimedOut {
            gate: 0,
            action: botarmy_protocol::TimeoutAction::Remind,
            waited_secs: 7_200,
        })
        .is_err()
    );
}

#[test]
fn a_conflict_is_mediated_escalated_answered_and_settled_by_its_check() {
    use botarmy_protocol::{
        Conflict, ConflictPosition, ConflictResolution, MediationRound, Severity, StepKind,
    };
    // Steps 0 and 1 write; step 2 checks them; step 3 reads, after the gate over 0-2.
    let mut p = gated(
        &[&[], &[], &[0, 1], &[0, 1]],
        &[0, 1, 2],
        Some(GatePolicy::Auto),
    );
    p.steps[2].kind = StepKind::ConflictCheck;
    let mut log = Log::new(p, RunOptions::default());
    log.perform(&Action::StartRun);
    log.finish_scored(0, score(0.9), score(0.9));
    log.finish_scored(1, score(0.9), score(0.9));
    assert_eq!(
        log.state.next_actions(),
        vec![Action::StartStep {
            step: 2,
            attempt: 1,
            resume: false
        }],
        "the reader waits for the check, which is in the gate"
    );
    log.perform(&log.state.next_actions()[0].clone());
    let detail = Conflict {
        severity: Severity::High,
        description: "storage".into(),
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
    };
    let one_sided = Conflict {
        positions: detail.positions[..1].to_vec(),
        ..detail.clone()
    };
    assert!(
        log.push(Event::ConflictDetected {
            step: 2,
            attempt: 1,
            conflict: 0,
            detail: one_sided,
        })
        .is_err(),
        "a conflict has two sides"
    );
    log.push(Event::ConflictDetected {
        step: 2,
        attempt: 1,
        conflict: 0,
        detail: detail.clone(),
    })
    .unwrap();
    let round = |round: u32| Event::ConflictMediated {
        step: 2,
        conflict: 0,
        round,
        outcome: MediationRound {
            proposal: format!("proposal {round}"),
            score: 0.5,
            reasons: vec![],
        },
    };
    assert!(log.push(round(2)).is_err(), "rounds come in order");
    for r in 1..=3 {
        log.push(round(r)).unwrap();
    }
    assert_eq!(log.state.conflict_views()[0].status, "mediating");
    log.push(Event::ConflictEscalated {
        step: 2,
        conflict: 0,
        question: "which one?".into(),
    })
    .unwrap();
    assert_eq!(log.state.status, RunStatus::Waiting);
    let q = log.state.question().unwrap();
    assert_eq!((q.kind, q.question), ("conflict", "which one?"));
    log.push(Event::StepInterrupted {
        step: 2,
        attempt: 1,
    })
    .unwrap();
    assert!(log.state.next_actions().is_empty());
    log.push(Event::ClarificationAnswered {
        step: 2,
        call: 0,
        answer: "1".into(),
        by: "ada".into(),
    })
    .unwrap();
    assert_eq!(log.state.status, RunStatus::Running);
    assert_eq!(
        log.state.steps[2].conflicts[0].answered_by.as_deref(),
        Some("ada")
    );
    log.perform(&log.state.next_actions()[0].clone());
    let resolved = Event::ConflictResolved {
        step: 2,
        conflict: 0,
        resolution: ConflictResolution {
            resolution: "PostgreSQL holds".into(),
            by: "ada".into(),
            score: None,
        },
    };
    log.push(resolved.clone()).unwrap();
    assert!(log.push(resolved).is_err(), "settled once");
    assert!(
        log.state.settled_conflicts().is_empty(),
        "the check is not done yet"
    );
    log.complete_step(2, 7);
    let view = &log.state.conflict_views()[0];
    assert_eq!(view.status, "settled");
    assert_eq!(view.rounds.len(), 3);
    assert_eq!(view.question, None);
    assert_eq!(log.state.settled_conflicts().len(), 1);
    // The check has no scores of its own; the gate reads its documents' and lets them pass.
    assert_eq!(
        log.state.next_actions(),
        vec![Action::StartStep {
            step: 3,
            attempt: 1,
            resume: false
        }]
    );
    // A new attempt of the check starts from nothing.
    log.perform(&log.state.next_actions()[0].clone());
    log.complete_step(3, 1);
    log.push(Event::StepRestarted {
        step: 2,
        reason: "again".into(),
        feedback: None,
        by: None,
    })
    .unwrap();
    log.perform(&log.state.next_actions()[0].clone());
    assert!(log.state.steps[2].conflicts.is_empty());
}

#[test]
fn a_plan_whose_gates_and_steps_wait_for_each_other_fails_instead_of_stalling() {
    // The gate covers steps 0 and 2; step 1 (outside it) needs step 0 through the gate, and
    // step 2 needs step 1: nobody can move once step 0 is done.
    let mut log = Log::new(
        gated(&[&[], &[0], &[1]], &[0, 2], Some(GatePolicy::Auto)),
        RunOptions::default(),
    );
    log.perform(&Action::StartRun);
    log.finish_scored(0, score(0.9), score(0.9));
    let actions = log.state.next_actions();
    let [Action::FailRun { error, step: None }] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(
        error.message,
        "the run cannot go on: steps step-1, step-2 wait for gates that wait for them"
    );
}
