//! `convlens`: the native command line over the ConvLens core. Argument parsing and file I/O only.

mod cli;

use clap::Parser;

fn main() {
    convlens::backend::retain_freed_memory();
    // clap prints --help, --version and argument errors itself (with usage) and exits.
    let args = cli::Cli::parse();
    if let Err(message) = pollster::block_on(cli::run(args)) {
        eprintln!("convlens: {message}");
        std::process::exit(1);
    }
}
