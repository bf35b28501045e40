//! `pgcalm trace`: placeholder so the command map exists; its issue fills it in.

use crate::context::Context;

/// Flags of `pgcalm trace`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Not built yet.
pub async fn run(_ctx: &Context, _args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`pgcalm trace` is not built yet")
}
