use clap::Parser;

fn main() {
    let cli = kata::cli::Cli::parse();
    let code = match kata::cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
