//! Every file of the real BMAD v4 core folder loads, with the facts we rely on.

use botarmy_core::method::TableRow;

use crate::support::{fixtures, fixtures_dir};

#[test]
fn every_fixture_file_loads() {
    let m = fixtures();
    assert_eq!(m.agents().len(), 10);
    assert_eq!(m.templates().len(), 13);
    assert_eq!(m.workflows().len(), 6);
    assert_eq!(m.teams().len(), 4);
    assert_eq!(m.tasks().len(), 23);
    assert_eq!(m.checklists().len(), 6);
    assert_eq!(m.data().len(), 6);
    assert_eq!(m.utils().len(), 2);
    assert_eq!(m.config()["prd"]["prdFile"], "docs/prd.md");
    assert_eq!(m.other_files(), ["LICENSE"]);
    // every file of the folder was seen
    let mut count = 0;
    let mut stack = vec![fixtures_dir()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                count += 1
            }
        }
    }
    assert_eq!(count, 10 + 13 + 6 + 4 + 23 + 6 + 6 + 2 + 1 + 1);
}
