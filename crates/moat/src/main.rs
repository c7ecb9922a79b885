//! `moat`: the command-line front of moat. Parsing and reporting live here; the work is
//! done by the `moat-policy` and `moat-sandbox` libraries.

mod cli;

fn main() {
    let code = cli::main();
    std::process::exit(code);
}
