//! `convlens`: the native command line over the ConvLens core. Argument parsing and file I/O only.

mod cli;

use clap::Parser;

// Reuses freed blocks instead of handing them back to the kernel (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // clap prints --help, --version and argument errors itself (with usage) and exits.
    let args = cli::Cli::parse();
    if let Err(message) = pollster::block_on(cli::run(args)) {
        eprintln!("convlens: {message}");
        std::process::exit(1);
    }
}
