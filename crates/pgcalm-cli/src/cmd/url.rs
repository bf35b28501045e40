//! `pgcalm url`: the connection URL with its password, for scripts
//! (`DATABASE_URL=$(pgcalm url)`); `status` shows it masked.

use crate::context::Context;

/// Flags of `pgcalm url`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints the URL: the embedded cluster's (only for the user who can read its password
/// file) or `DATABASE_URL` as given.
pub async fn run(ctx: &Context, _args: Args) -> anyhow::Result<()> {
    println!("{}", ctx.url_with_password()?);
    Ok(())
}
