//! `pgcalm logs [--follow]`: the seed's `docker compose logs db`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::Context as _;

use crate::settings::Settings;

/// Flags of `pgcalm logs`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Keep printing new lines as the server writes them (Ctrl-C to stop).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, short = 'n')]
    pub tail: Option<usize>,
}

/// Prints the embedded server's log.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let Some(cluster) = settings.embedded_cluster()? else {
        anyhow::bail!(
            "logs are only available for the embedded server; DATABASE_URL names an external one"
        );
    };
    let path = cluster.log_path();
    let mut file = std::fs::File::open(&path)
        .with_context(|| format!("opening {} (has `pgcalm up` run here?)", path.display()))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let mut out = std::io::stdout().lock();
    match args.tail {
        Some(n) => {
            let last = pgcalm_pg::cluster::last_lines(&text, n);
            if !last.is_empty() {
                writeln!(out, "{last}")?;
            }
        }
        None => out.write_all(text.as_bytes())?,
    }
    out.flush()?;
    drop(out);
    if args.follow {
        let mut pos = file.seek(SeekFrom::End(0))?;
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let len = std::fs::metadata(&path)?.len();
            if len < pos {
                pos = 0; // truncated or replaced
            }
            if len > pos {
                file.seek(SeekFrom::Start(pos))?;
                let mut buf = Vec::new();
                file.read_to_end(&mut buf)?;
                pos += buf.len() as u64;
                let mut out = std::io::stdout().lock();
                out.write_all(&buf)?;
                out.flush()?;
            }
        }
    }
    Ok(())
}
