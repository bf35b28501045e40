//! Sample files (`--out`): CSV or JSON lines, chosen by the file's extension.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::ProbeError;
use crate::sample::Sample;

/// Format of a sample file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// `.csv`: a header line, then one row per sample.
    Csv,
    /// `.jsonl`, `.ndjson`, `.json`: one JSON object per sample.
    JsonLines,
}

impl SampleFormat {
    /// The format a path's extension asks for.
    pub fn from_path(path: &Path) -> Result<Self, ProbeError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Ok(Self::Csv),
            Some("jsonl" | "ndjson" | "json") => Ok(Self::JsonLines),
            _ => Err(ProbeError::UnknownOutFormat(path.to_path_buf())),
        }
    }
}

/// CSV columns, in order.
pub const CSV_HEADER: &str =
    "target,seq,started_at_ms,offset_ms,latency_ms,outcome,error,status,detail";

/// Writes samples to a file as they come.
#[derive(Debug)]
pub struct SampleWriter {
    path: PathBuf,
    format: SampleFormat,
    out: BufWriter<File>,
}

impl SampleWriter {
    /// Creates (truncates) `path`; the format follows its extension.
    pub fn create(path: &Path) -> Result<Self, ProbeError> {
        let format = SampleFormat::from_path(path)?;
        let file = File::create(path).map_err(|source| ProbeError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        let mut writer = Self {
            path: path.to_path_buf(),
            format,
            out: BufWriter::new(file),
        };
        if format == SampleFormat::Csv {
            let header = format!("{CSV_HEADER}\n");
            writer.put(header.as_bytes())?;
        }
        Ok(writer)
    }

    /// Appends one sample.
    pub fn write(&mut self, s: &Sample) -> Result<(), ProbeError> {
        let line = match self.format {
            SampleFormat::JsonLines => {
                let mut line = serde_json::to_string(s).expect("a sample serializes");
                line.push('\n');
                line
            }
            SampleFormat::Csv => format!(
                "{},{},{},{:.3},{:.3},{},{},{},{}\n",
                csv_field(&s.target),
                s.seq,
                s.started_at_ms,
                s.offset_ms,
                s.latency_ms,
                s.outcome.as_str(),
                s.error.map(|e| e.key()).unwrap_or_default(),
                s.status.map(|c| c.to_string()).unwrap_or_default(),
                csv_field(s.detail.as_deref().unwrap_or_default()),
            ),
        };
        self.put(line.as_bytes())
    }

    /// Flushes the file.
    pub fn finish(mut self) -> Result<(), ProbeError> {
        self.out.flush().map_err(|source| ProbeError::Write {
            path: self.path.clone(),
            source,
        })
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), ProbeError> {
        self.out
            .write_all(bytes)
            .map_err(|source| ProbeError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

/// Quotes a CSV field when it holds a comma, a quote or a line break (RFC 4180); the
/// lab's sample tables use it too.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(
            SampleFormat::from_path(Path::new("a.CSV")).unwrap(),
            SampleFormat::Csv
        );
        assert_eq!(
            SampleFormat::from_path(Path::new("a.jsonl")).unwrap(),
            SampleFormat::JsonLines
        );
        let e = SampleFormat::from_path(Path::new("samples.txt")).unwrap_err();
        assert!(e.to_string().contains("samples.txt"), "{e}");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
