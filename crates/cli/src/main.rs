//! The `botarmy` command: runs the lifecycle from a terminal and inspects stored runs.

fn main() {}
