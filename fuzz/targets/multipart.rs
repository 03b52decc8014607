//! The mask job form (`POST /api/masks`): the fuzz bytes as a `multipart/form-data` body with
//! the boundary [`BOUNDARY`], extracted by axum's `Multipart` as the server does, read by the
//! server's own form reader (`read_mask_form`: photos, range-checked fields, counts, models),
//! then every photo decoded as the job's preparation decodes it (`super::image::decode`, with
//! the same cap on declared pixels). Runs on a current-thread tokio runtime made once per
//! process.

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{FromRequest as _, Multipart};
use axum::http::{Request, header};
use fuselab::server::read_mask_form;
use tokio::runtime::Runtime;

/// The boundary of the seeds; the body is the fuzzer's bytes.
pub const BOUNDARY: &str = "fuselab-fuzz-boundary";

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// See the module documentation.
pub fn run(data: &[u8]) {
    let request = Request::builder()
        .method("POST")
        .uri("/api/masks")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(data.to_vec()))
        .expect("a valid request");
    runtime().block_on(async {
        let Ok(form) = Multipart::from_request(request, &()).await else {
            return;
        };
        let Ok(form) = read_mask_form(form).await else {
            return;
        };
        for (name, bytes) in &form.photos {
            super::image::decode(bytes, name);
        }
    });
}
