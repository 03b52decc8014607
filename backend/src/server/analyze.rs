//! `POST /api/ensemble/analyze`: the browser's analysis, on the server, for pools too large for
//! the device. The pool is validated before anything is streamed (a bad pool is a 422 naming the
//! model, sample or class); then Server-Sent Events report progress and end with the analysis.
//! A pool with splits is analysed on the request's split (the test split by default).

use std::convert::Infallible;

use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
};
use fuselab_shared::{
    api::AnalyzeRequest,
    ensemble::{FocalTable, Pool, PoolError, analysis_with},
};
use futures_util::Stream;
use tokio::sync::mpsc;

use super::{Actor, AppError, AppState};

/// One message of the stream, as `event: <kind>` with JSON data.
enum Message {
    Progress { done: u64, total: u64 },
    Result(String),
    Failed(String),
}

impl Message {
    fn event(self) -> Event {
        match self {
            Self::Progress { done, total } => Event::default()
                .event("progress")
                .data(format!("{{\"done\":{done},\"total\":{total}}}")),
            Self::Result(json) => Event::default().event("result").data(json),
            Self::Failed(message) => Event::default()
                .event("error")
                .data(serde_json::json!({ "error": message }).to_string()),
        }
    }
}

pub async fn analyze(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Json<AnalyzeRequest>, JsonRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let slot = state.heavy.slot(&actor)?;
    let Json(request) = body.map_err(|r| AppError::json(&r, state.max_body_bytes))?;
    let options = request.options;
    let limits = state.limits;
    let split = request.split;
    let (pool, used) = tokio::task::spawn_blocking(move || {
        let (input, used) = request.pool.select(split)?;
        Ok::<_, PoolError>((Pool::with_limits(input, &limits)?, used))
    })
    .await
    .map_err(|e| AppError::Internal {
        context: "validating a pool",
        source: e.into(),
    })?
    .map_err(|e| {
        AppError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("not a valid model pool: {e}"),
        )
    })?;
    limits
        .check_teams(pool.models(), options.min_size, options.max_size)
        .map_err(|e| {
            AppError::client(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{e} on `fuselab serve`; choose a narrower size range"),
            )
        })?;
    let (sender, receiver) = mpsc::channel::<Message>(64);
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let started = std::time::Instant::now();
        let table = FocalTable::new(&pool);
        // Once the client has gone, every remaining team is skipped (scored as undefined), so a
        // cancelled analysis stops costing CPU within one pass over the team list.
        let closed = sender.clone();
        let focal = |members: &[usize]| {
            if closed.is_closed() {
                None
            } else {
                table.focal_diversity(members).mean
            }
        };
        let mut progress = |done, total| {
            let _ = sender.blocking_send(Message::Progress { done, total });
        };
        let message = match analysis_with(&pool, &options, &focal, &mut progress) {
            Ok(mut analysis) => {
                analysis.millis = Some(started.elapsed().as_secs_f64() * 1000.0);
                analysis.split = used;
                match serde_json::to_string(&analysis) {
                    Ok(json) => Message::Result(json),
                    Err(error) => {
                        tracing::error!(%error, "encoding an analysis");
                        Message::Failed(
                            "internal server error; the details are in the server log".into(),
                        )
                    }
                }
            }
            Err(error) => Message::Failed(error.to_string()),
        };
        let _ = sender.blocking_send(message);
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let message = receiver.recv().await?;
        Some((Ok(message.event()), receiver))
    });
    Ok(Sse::new(super::bounded(stream)).keep_alive(KeepAlive::default()))
}
