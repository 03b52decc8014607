//! Click-through-rate prediction data for CCN and its DIN baselines (spec `ccn.md`): the
//! exposure records both offline datasets share (`exposure`), the seeded synthetic benchmark with
//! its true click probabilities (`synthetic`), the MovieLens-100K trigger-induced proxy
//! (`movielens`), the declarative feature schema and its encoding into ids (`schema`, `encode`),
//! same-page pairs for the contrastive losses (`pairs`), and AUC, GAUC and logloss (`metrics`).

pub mod encode;
pub mod exposure;
pub mod metrics;
pub mod movielens;
pub mod pairs;
pub mod schema;
pub mod synthetic;
