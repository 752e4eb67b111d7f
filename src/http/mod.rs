//! The HTTP surface: routes, thin handlers, DTOs. Handlers extract, validate,
//! make one scheduler or store call and answer; no SQL, status logic or process
//! code lives here.

pub mod auth;
pub mod auth_doc;
pub mod conn;
pub mod dto;
pub mod envs;
pub mod guard;
pub mod health;
pub mod metrics;
pub mod results;
pub mod run_reports;
pub mod runs;
pub mod spa;
pub mod test_tree;
pub mod verdicts;
pub mod worker_api;
pub mod ws;

use crate::error::AppError;
use actix_web::{http::Method, web, HttpRequest, HttpResponse};
use serde_json::json;

/// Every route of the server.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(|err, _| AppError::field("query", err.to_string()).into()))
        .service(
            web::resource("/healthz")
                .get(health::healthz)
                .default_service(web::to(method_not_allowed)),
        )
        .service(resource("/metrics").get(metrics::scrape))
        .service(
            web::resource("/ws")
                .get(ws::handshake)
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::scope("/api")
                .service(resource("/login").post(auth::login))
                .service(resource("/logout").post(auth::logout))
                .service(resource("/me").get(auth::me))
                .service(resource("/tokens").get(auth::list_tokens).post(auth::create_token))
                .service(resource("/tokens/{id}").delete(auth::revoke_token))
                .service(resource("/audit").get(auth::audit_log))
                .service(resource("/tests").get(test_tree::list))
                .service(resource("/openapi.json").get(openapi))
                .service(resource("/envs").get(envs::list))
                .service(resource("/envs/config").get(envs::config))
                .service(resource("/envs/{id}").get(envs::get))
                .service(resource("/envs/{id}/disable").post(envs::disable))
                .service(resource("/envs/{id}/enable").post(envs::enable))
                .service(resource("/envs/{id}/reservations").post(envs::reserve))
                .service(resource("/reservations").get(envs::reservations))
                .service(
                    resource("/reservations/{rid}")
                        .route(web::patch().to(envs::move_reservation))
                        .route(web::delete().to(envs::end_reservation)),
                )
                .service(resource("/workers").get(worker_api::list))
                .service(resource("/workers/heartbeat").post(worker_api::heartbeat))
                .service(resource("/testruns").get(runs::list).post(runs::create))
                .service(resource("/testruns/{id}").get(runs::get).post(run_reports::report))
                .service(resource("/testruns/{id}/cancel").post(runs::cancel))
                .service(resource("/testruns/{id}/logs").get(runs::logs_json))
                .service(resource("/testruns/{id}/log.txt").get(runs::log_txt))
                .service(resource("/testruns/{id}/lines").get(runs::lines))
                .service(resource("/testruns/{id}/search").get(runs::search))
                .service(resource("/verdicts").get(verdicts::verdicts))
                .service(resource("/results/history").get(verdicts::history))
                .service(resource("/testruns/{id}/results").get(results::list))
                .service(resource("/testruns/{id}/rerun").post(results::rerun))
                .default_service(web::to(api_not_found)),
        )
        .default_service(web::to(fallback));
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the code.
async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::openapi::document_json())
}

async fn api_not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound(format!("No API at {}", req.path())))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    HttpResponse::MethodNotAllowed().json(json!({
        "message": format!("{} is not allowed on {}", req.method(), req.path()),
        "code": "method_not_allowed"
    }))
}

async fn fallback(req: HttpRequest) -> HttpResponse {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        spa::serve(req).await
    } else {
        method_not_allowed(req).await
    }
}
