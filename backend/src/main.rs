use std::process::ExitCode;

fn main() -> ExitCode {
    fuselab::cli::main()
}
