//! The commands, one module each, named after the command; every one is entered as
//! `async fn run(&Args) -> anyhow::Result<u8>` and returns its exit code.

mod ab;
mod capacity;
mod compare;
pub mod conform;
mod merge;
pub mod run;
mod trace_gen;

use crate::cli::{Command, Opts};

/// Runs the command `opts` names (a plain run without one): its exit code.
pub async fn dispatch(mut opts: Opts) -> anyhow::Result<u8> {
    match opts.command.take() {
        Some(Command::Capacity(c)) => capacity::run(&c).await,
        Some(Command::Compare(c)) => compare::run(&c).await,
        Some(Command::Merge(c)) => merge::run(&c).await,
        Some(Command::Conform(c)) => conform::run(&c).await,
        Some(Command::Ab(c)) => ab::run(&c).await,
        Some(Command::TraceGen(c)) => trace_gen::run(&c).await,
        None => run::run(&opts).await,
    }
}
