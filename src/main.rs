use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = wa_gateway::cli::Cli::parse();
    match wa_gateway::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
