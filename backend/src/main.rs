use std::process::ExitCode;

// burn's CPU backend allocates and frees large buffers on every op: glibc's malloc hands them
// back to the kernel and page-faults them in again (a fifth of a tiny-Llama training step).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    fuselab::cli::main()
}
