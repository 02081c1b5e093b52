//! The policies `ifad-eval` compares.

pub mod fcfs;
pub mod ifad;
pub mod optimal;
