//! `/api/reports`: save an analysis, list, fetch and delete saved ones; `/reports/{id}` is the
//! read-only page of one (the browser app renders it).

use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use fuselab_shared::{
    api::{ReportSummary, SaveReport, SavedReport},
    ensemble::{ANALYSIS_SCHEMA, REPORT_SCHEMA},
};

use super::{Actor, AppError, AppState};
use crate::reports::{ReportStore, StoreError, is_id};

fn store(state: &AppState) -> Result<&ReportStore, AppError> {
    state.reports.as_deref().ok_or_else(|| {
        AppError::client(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server keeps no reports (it was started without a data directory)",
        )
    })
}

fn internal(context: &'static str) -> impl FnOnce(StoreError) -> AppError {
    move |e| {
        if e.is_input() {
            let status = if matches!(e, StoreError::TooMany { .. }) {
                StatusCode::CONFLICT
            } else {
                StatusCode::PAYLOAD_TOO_LARGE
            };
            AppError::client(status, e.to_string())
        } else {
            AppError::Internal {
                context,
                source: e.into(),
            }
        }
    }
}

fn not_found(id: &str) -> AppError {
    AppError::client(StatusCode::NOT_FOUND, format!("no saved report `{id}`"))
}

pub async fn save(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Json<SaveReport>, JsonRejection>,
) -> Result<(StatusCode, Json<SavedReport>), AppError> {
    let Json(request) = body.map_err(|r| AppError::json(&r, state.max_body_bytes))?;
    let schemas = (
        request.analysis.schema.as_str(),
        request.analysis.report.schema.as_str(),
    );
    if schemas != (ANALYSIS_SCHEMA, REPORT_SCHEMA) {
        return Err(AppError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "expected an analysis of schema {ANALYSIS_SCHEMA} holding a report of schema {REPORT_SCHEMA}, found {} and {}",
                schemas.0, schemas.1
            ),
        ));
    }
    let id = store(&state)?
        .save(
            &request.analysis,
            request.title.as_deref(),
            actor.owner_id(),
        )
        .await
        .map_err(internal("saving a report"))?;
    tracing::info!(user = actor.name(), "report saved");
    Ok((
        StatusCode::CREATED,
        Json(SavedReport {
            url: format!("/reports/{id}"),
            id,
        }),
    ))
}

pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<ReportSummary>>, AppError> {
    Ok(Json(
        store(&state)?
            .list(actor.scope())
            .await
            .map_err(internal("listing reports"))?,
    ))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    if !is_id(&id) {
        return Err(not_found(&id));
    }
    let json = store(&state)?
        .get(&id)
        .await
        .map_err(internal("reading a report"))?
        .ok_or_else(|| not_found(&id))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    if !is_id(&id) {
        return Err(not_found(&id));
    }
    if store(&state)?
        .delete(&id, actor.scope())
        .await
        .map_err(internal("deleting a report"))?
    {
        tracing::info!(user = actor.name(), "report deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}
