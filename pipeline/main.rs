//! The `sightline` command line. See `sightline --help`.

/// mimalloc instead of glibc malloc: the hot path allocates per event, and glibc's
/// consolidation and free-list work was about a quarter of the pipeline's CPU in the profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sightline::cli::main()
}
