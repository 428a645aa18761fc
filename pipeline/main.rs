//! The `sightline` command line. See `sightline --help`.

fn main() -> std::process::ExitCode {
    sightline::cli::main()
}
