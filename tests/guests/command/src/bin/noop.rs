//! Does nothing: the smallest real wasip2 program, for measuring what a
//! task costs the orchestrator (the runner benchmark's process rows).
fn main() {}
