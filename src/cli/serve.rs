use audiorec::api::startup::{Application, shutdown_signal};
use audiorec::config::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: Settings,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let settings = args.settings;
    tracing::info!(?settings, "starting");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(async {
        let app = Application::build(&settings).await?;
        let address = app.address();
        tracing::info!(%address, "listening");
        println!("audiorec listening on http://{address}");
        println!("  API docs (Swagger UI): http://{address}/docs");
        println!("  OpenAPI document:      http://{address}/openapi.json");
        app.run_until(shutdown_signal()).await
    });
    // A job handed back at shutdown may still be computing on a blocking thread: its
    // result is no longer wanted (another process redoes the job), so do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}
