//! Fuzzes the definitions loader: the first byte picks what the rest of the input is parsed
//! as (agent, template, workflow, team, or a workflow added to the builtin method, which is
//! then checked, planned, prompted and finished).
#![no_main]

use botarmy_core::method::{Method, MethodSource, parse_agent, parse_team, parse_template, parse_workflow};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match kind % 5 {
        0 => {
            let _ = parse_agent("agents/fuzz.md", &text);
        }
        1 => {
            let _ = parse_template("templates/fuzz-tmpl.yaml", &text);
        }
        2 => {
            let _ = parse_workflow("workflows/fuzz.yaml", &text);
        }
        3 => {
            let _ = parse_team("agent-teams/fuzz.yaml", &text);
        }
        _ => {
            let mut files: Vec<(String, Vec<u8>)> = botarmy_core::method::builtin_files()
                .iter()
                .map(|(p, t)| ((*p).to_owned(), t.as_bytes().to_vec()))
                .collect();
            files.push(("workflows/fuzz.yaml".to_owned(), rest.to_vec()));
            let Ok(m) = Method::from_files(MethodSource::Builtin, files) else { return };
            let _ = m.check();
            let Some(id) = m.workflows().iter().find(|w| w.file == "workflows/fuzz.yaml").map(|w| w.id.clone()) else {
                return;
            };
            let Ok(plan) = m.plan(&id) else { return };
            for step in &plan.steps {
                let inputs: Vec<(&str, &str)> = step.requires.iter().map(|r| (r.as_str(), "# Doc\n\ntext")).collect();
                let _ = m.prompt(step, &text, &inputs, 200);
                if let Some(c) = &step.condition {
                    let _ = m.condition_prompt(step, &text, &inputs, c, 200);
                }
                let _ = m.finish_document(step, &text, &text);
            }
        }
    }
});
