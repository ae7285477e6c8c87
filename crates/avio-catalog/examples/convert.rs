//! `convert FILE`: converts one price list and prints the normalized CSV on stdout.
//!
//! A thin harness for benchmarks and manual checks; warnings go to stderr.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use avio_catalog::{Limits, SourceKind, convert, write_csv};

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: convert FILE");
        return ExitCode::from(2);
    };
    let extension = std::path::Path::new(&path).extension().and_then(|e| e.to_str()).unwrap_or("");
    let Some(kind) = SourceKind::from_extension(extension) else {
        eprintln!("convert: unsupported extension {extension:?}");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("convert: cannot read {path}: {error}");
            return ExitCode::FAILURE;
        }
    };
    match convert(&bytes, kind, &Limits::default()) {
        Ok(conversion) => {
            for warning in &conversion.warnings {
                eprintln!("warning: {warning}");
            }
            eprintln!("{} rows via {}", conversion.rows.len(), conversion.pipeline);
            let stdout = std::io::stdout().lock();
            let mut out = std::io::BufWriter::new(stdout);
            if write_csv(&conversion.rows, &mut out).and_then(|()| out.flush()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("convert: {error}");
            ExitCode::FAILURE
        }
    }
}
