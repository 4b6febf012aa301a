//! check

#[test]
fn scratch_print() {
    let m = crate::support::fixtures();
    for d in m.check() {
        println!("{:?} {d}", d.severity);
    }
    for w in m.workflow_ids() {
        match m.plan(&w) {
            Ok(p) => {
                println!("== {w} {} {}", p.cycle_type, p.steps.len());
                for (i, s) in p.steps.iter().enumerate() {
                    println!(
                        "{i} {} | {} | {} | {:?} | {:?} | req {:?} | deps {:?} | opt {} | cond {:?} | instr {:?}",
                        s.key,
                        s.title,
                        s.agent,
                        s.creates,
                        s.template,
                        s.requires,
                        s.depends_on,
                        s.optional,
                        s.condition,
                        s.instruction
                    );
                }
            }
            Err(e) => println!("ERR {e}"),
        }
    }
    let b = crate::support::builtin();
    for d in b.check() {
        println!("{:?} {d}", d.severity);
    }
    let p = b.plan("sdlc").unwrap();
    for (i, s) in p.steps.iter().enumerate() {
        println!(
            "{i} {} | {} | {:?} | {} | {:?} | {:?} | req {:?} | deps {:?}",
            s.key, s.title, s.phase, s.agent, s.creates, s.template, s.requires, s.depends_on
        );
    }
}
