//! `convlens`: the native command line over the ConvLens core. Argument parsing and file I/O only.

mod cli;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(message) = pollster::block_on(cli::run(args)) {
        eprintln!("convlens: {message}");
        std::process::exit(1);
    }
}
