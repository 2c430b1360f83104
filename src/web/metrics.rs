//! `GET /metrics`: the Prometheus text exposition, served only on the listener of its own that
//! `metrics.listen` names (never on the public port: the numbers tell a stranger how the
//! gateway is used).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

use crate::core::metrics::Metrics;

/// The exposition format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Registers `GET /metrics` (the app must hold `web::Data<Metrics>`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(scrape));
}

async fn scrape(metrics: web::Data<Metrics>) -> HttpResponse {
    match metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT)))
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .body(text),
        Err(e) => {
            log::error!("metrics not rendered: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}
