//! `audiorec serve`: the service, and on demo data the demo's neural models trained in
//! the background once it listens (see `audiorec::experiment::demo`).

use std::sync::Arc;

use audiorec::api::startup::{Application, shutdown_signal};
use audiorec::config::Settings;
use audiorec::dataset::MissingTracks;
use audiorec::dataset::demo::is_demo;
use audiorec::experiment::cell::CellContext;
use audiorec::experiment::demo;
use audiorec::experiment::plan::model_name;
use audiorec::model::parse_device;
use audiorec::recommend::loader::Loader;

use super::DataArgs;

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
        start_demo_training(&settings, app.loader());
        app.run_until(shutdown_signal()).await
    });
    // A job handed back at shutdown may still be computing on a blocking thread: its
    // result is no longer wanted (another process redoes the job), so do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

/// On demo data, when it is on and a demo model has no finished checkpoint: marks those
/// models as training and trains them on a thread of their own once the start-up loading
/// is over (so the indexes are built first). Stopping the service stops it; the next
/// start continues from the last finished epoch.
fn start_demo_training(settings: &Settings, loader: Loader) {
    if !settings.demo_training || !is_demo(&settings.data) {
        return;
    }
    let registry = loader.registry().clone();
    if !registry.backends.contains_key(demo::BACKEND) {
        tracing::info!(
            backend = demo::BACKEND,
            "demo training skipped: the backend is not served"
        );
        return;
    }
    let config = demo::config(settings.demo_epochs.map(|e| e as usize));
    let cells = demo::cells(&settings.models_dir(), demo::BACKEND);
    if cells.is_empty() {
        return;
    }
    demo::announce(&registry, &cells, &config);
    let data = DataArgs {
        data: settings.data.clone(),
        keep_from: None,
        missing_tracks: MissingTracks::Skip,
    };
    let (models, device) = (settings.models_dir(), settings.device.clone());
    let (failed, pending) = (registry.clone(), cells.clone());
    let train = move || -> anyhow::Result<()> {
        registry.wait_started();
        tracing::info!(
            cells = cells.len(),
            backend = demo::BACKEND,
            "demo data without trained models: training them in the background"
        );
        let (dataset, split) = data.open_split()?;
        let device = parse_device(&device).map_err(anyhow::Error::msg)?;
        let embeddings = Arc::clone(&registry.backends[demo::BACKEND]);
        let cx = CellContext {
            config: &config,
            dataset: &dataset,
            split: &split,
            embeddings,
            models: &models,
            device: &device,
        };
        demo::train(&cells, &cx, &loader);
        Ok(())
    };
    std::thread::Builder::new()
        .name("demo-training".into())
        .spawn(move || {
            if let Err(e) = train() {
                let reason = format!("the demo training could not start: {e:#}");
                tracing::error!(error = %reason, "no demo training");
                for cell in &pending {
                    failed.fail(model_name(cell.model), &cell.backend, reason.clone());
                }
            }
        })
        .expect("spawn the demo training thread");
}
