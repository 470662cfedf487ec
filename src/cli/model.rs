//! Flags that choose and configure a recommender, and building it from a split.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use audiorec::dataset::{Dataset, Split};
use audiorec::embeddings::Embeddings;
use audiorec::index::{HnswParams, IndexKind};
use audiorec::model::bert4rec::ItemInit;
use audiorec::model::bert4rec::checkpoint::default_name;
use audiorec::model::checkpoint::{self, CheckpointPaths};
use audiorec::model::parse_device;
use audiorec::model::shallow::Init;
use audiorec::model::shallow::checkpoint::ShallowCheckpoint;
use audiorec::recommend::Recommender;
use audiorec::recommend::bert4rec::Bert4RecRecommender;
use audiorec::recommend::knn::KnnRecommender;
use audiorec::recommend::shallow::ShallowRecommender;

/// Which recommender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// Mean of the history's embeddings, nearest tracks by cosine.
    Knn,
    /// A trained Shallow Net checkpoint (`audiorec train shallow`).
    Shallow,
    /// Trained BERT4Rec over the backend's frozen embeddings (`train bert4rec`).
    Bert4rec,
    /// Trained BERT4Rec whose item table was learned from random init (`--random`).
    Bert4recRandom,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Embedding backend: the stem of a file in DIR/embeddings/.
    #[arg(long, env = "AUDIOREC_BACKEND")]
    pub backend: String,
    #[arg(long, value_enum, default_value_t = Model::Knn)]
    pub model: Model,
    /// Nearest-neighbour search: an exact scan (the paper's method, the default for
    /// offline work) or HNSW (approximate, what the service serves).
    #[arg(long, value_enum, default_value_t = IndexKind::Exact)]
    pub index: IndexKind,
    /// HNSW links per node.
    #[arg(long, default_value_t = HnswParams::default().m)]
    pub hnsw_m: usize,
    /// HNSW candidate list size while building.
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    pub ef_construction: usize,
    /// HNSW candidate list size while searching (raised to k when smaller).
    #[arg(long, default_value_t = HnswParams::default().ef_search)]
    pub ef_search: usize,
    /// Search embeddings wider than this in a reduced space of at most this many
    /// principal directions (up to their spectrum's knee) and re-rank the candidates
    /// exactly (0: always at full width).
    #[arg(long, default_value_t = HnswParams::default().search_dim)]
    pub search_dim: usize,
    /// Where trained checkpoints are (default DIR/.audiorec/models).
    #[arg(long, env = "AUDIOREC_MODELS")]
    pub models: Option<PathBuf>,
    /// A checkpoint file or folder to serve, instead of <models>/<model>-<backend>.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// cpu, cuda or cuda:N for neural models (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu", env = "AUDIOREC_DEVICE")]
    pub device: String,
}

impl ModelArgs {
    pub fn hnsw(&self) -> HnswParams {
        HnswParams {
            m: self.hnsw_m,
            ef_construction: self.ef_construction,
            ef_search: self.ef_search,
            search_dim: self.search_dim,
        }
    }

    /// The parameters to record with a run.
    pub fn parameters(&self) -> serde_json::Value {
        serde_json::json!({
            "model": format!("{:?}", self.model).to_lowercase(),
            "backend": self.backend,
            "index": self.index,
            "hnsw": self.hnsw(),
            "checkpoint": self.checkpoint,
            "device": self.device,
        })
    }

    /// Whether the model's item side is a function of content (KNN, a Shallow Net with a
    /// content item table, BERT4Rec over the frozen table), so that cold tracks are
    /// recommendable. The Random variants learned their item rows from plays alone: a cold
    /// track's row is untrained noise, so they rank hot tracks only.
    pub fn reads_content(&self, dataset: &Dataset) -> anyhow::Result<bool> {
        Ok(match self.model {
            Model::Knn | Model::Bert4rec => true,
            Model::Bert4recRandom => false,
            Model::Shallow => {
                let paths = CheckpointPaths::resolve(
                    &self.shallow_path(dataset),
                    &format!("shallow-{}", self.backend),
                );
                let ckpt: ShallowCheckpoint = checkpoint::read(&paths)
                    .with_context(|| format!("could not read {}", paths.config().display()))?;
                ckpt.net.params.init == Init::Content
            }
        })
    }

    /// The tracks the model recommends on `split`: train and cold tracks for a model that
    /// reads content, train tracks only for the Random variants.
    pub fn universe(&self, dataset: &Dataset, split: &Split) -> anyhow::Result<Vec<u32>> {
        Ok(if self.reads_content(dataset)? {
            split.recommendable()
        } else {
            split.train_items.clone()
        })
    }

    /// The backend's matrices, loaded once and shared by every model a command builds.
    pub fn embeddings(&self, dataset: &Dataset) -> anyhow::Result<Arc<Embeddings>> {
        Ok(Arc::new(dataset.load_embeddings(&self.backend)?))
    }

    /// Builds the recommender over its universe on `split` (see [`Self::universe`]).
    pub fn build(
        &self,
        dataset: &Dataset,
        split: &Split,
        embeddings: &Arc<Embeddings>,
    ) -> anyhow::Result<Box<dyn Recommender>> {
        self.build_over(dataset, embeddings, &self.universe(dataset, split)?)
    }

    fn shallow_path(&self, dataset: &Dataset) -> PathBuf {
        self.checkpoint.clone().unwrap_or_else(|| {
            self.models
                .clone()
                .unwrap_or_else(|| dataset.layout.models())
        })
    }

    /// Builds the recommender over `items`, the only tracks it may recommend (a hot or
    /// cold evaluation builds it over one subset).
    pub fn build_over(
        &self,
        dataset: &Dataset,
        embeddings: &Arc<Embeddings>,
        items: &[u32],
    ) -> anyhow::Result<Box<dyn Recommender>> {
        let embeddings = embeddings.clone();
        tracing::info!(backend = %self.backend, dim = embeddings.dim, items = items.len(), index = ?self.index, "building recommender");
        Ok(match self.model {
            Model::Knn => Box::new(KnnRecommender::new(
                embeddings,
                items,
                self.index,
                self.hnsw(),
                Some(&dataset.layout.derived().join("index")),
            )),
            Model::Shallow => {
                let device = parse_device(&self.device).map_err(anyhow::Error::msg)?;
                let path = self.shallow_path(dataset);
                Box::new(
                    ShallowRecommender::load(
                        &path,
                        embeddings,
                        items,
                        self.index,
                        self.hnsw(),
                        &device,
                    )
                    .with_context(|| {
                        format!("could not load the shallow net from {}", path.display())
                    })?,
                )
            }
            Model::Bert4rec | Model::Bert4recRandom => {
                let init = match self.model {
                    Model::Bert4recRandom => ItemInit::Random,
                    _ => ItemInit::Content,
                };
                let dir = self
                    .models
                    .clone()
                    .unwrap_or_else(|| dataset.layout.models());
                let name = default_name(init, &self.backend);
                let device =
                    parse_device(&self.device).map_err(|e| anyhow::anyhow!("--device {e}"))?;
                let path = dir.join(&name);
                Box::new(
                    Bert4RecRecommender::load(&path, embeddings, items, &device).with_context(
                        || {
                            format!(
                                "could not load the checkpoint {}.json (train it with `audiorec train bert4rec`)",
                                path.display()
                            )
                        },
                    )?,
                )
            }
        })
    }
}
