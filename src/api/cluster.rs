//! The operator's view of the gateway processes sharing the database: live processes, who
//! holds which device under which epoch, and what the answering process did as a node.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{page, Admin, ApiQuery, PageQuery};
use super::ts;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_cluster))
}

/// A live gateway process.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NodeOut {
    pub id: String,
    /// `[cluster] node_name`, or host and process id.
    pub name: String,
    pub version: String,
    pub started_at: String,
    pub renewed_at: String,
    /// When the others may take its devices unless it renews first.
    pub expires_at: String,
    pub draining: bool,
    /// Devices whose lease it holds.
    pub devices: i64,
}

/// A device's lease.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LeaseOut {
    pub device_id: i64,
    /// The process holding it; `null` when given up.
    pub node: Option<String>,
    /// Grows with every change of holder; writes under an older epoch are refused.
    pub epoch: i64,
    pub acquired_at: String,
    /// Whether the holder is alive (a lease of a dead process is free to take).
    pub live: bool,
}

/// What the answering process did as a node since it started.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NodeStatsOut {
    pub leases_taken: u64,
    pub leases_given_up: u64,
    /// Writes refused because the process no longer held the device.
    pub fenced_writes: u64,
    /// Messages sent again, under the same WhatsApp id, after their device changed process.
    pub resent_after_takeover: u64,
    /// Times it stopped its sessions because it could not renew in time.
    pub stopped_unrenewed: u64,
    /// Times it was declared dead and joined again under a new id.
    pub rejoined: u64,
    /// Session commands it ran for other processes, and asked others to run.
    pub commands_run: u64,
    pub commands_sent: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ClusterOut {
    /// The id of the process that answered.
    pub this_node: String,
    /// Live processes, oldest first.
    pub nodes: Vec<NodeOut>,
    /// A page of the device leases (`limit`, `offset`), by device id.
    pub leases: Vec<LeaseOut>,
    pub leases_total: i64,
    pub limit: i64,
    pub offset: i64,
    pub stats: NodeStatsOut,
}

/// The gateway processes on this database and the device leases.
#[utoipa::path(get, path = "/api/admin/cluster", tag = "admin", params(PageQuery),
    responses((status = 200, body = ClusterOut)))]
async fn get_cluster(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ClusterOut>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    Ok(Json(cluster_view(&state, limit, offset).await?))
}

/// The cluster as the answering process sees it, with a page of the leases: what the JSON
/// route answers and the operator's dashboard page shows.
pub(crate) async fn cluster_view(state: &AppState, limit: i64, offset: i64) -> ApiResult<ClusterOut> {
    let node = state.device_manager.node();
    let db = &state.db;
    let held: HashMap<String, i64> = db.cluster_held_counts().await?.into_iter().collect();
    let nodes = db
        .cluster_live_nodes()
        .await?
        .into_iter()
        .map(|n| NodeOut {
            devices: held.get(&n.node_id).copied().unwrap_or(0),
            id: n.node_id,
            name: n.name,
            version: n.version,
            started_at: ts(n.started_at),
            renewed_at: ts(n.renewed_at),
            expires_at: ts(n.expires_at),
            draining: n.draining,
        })
        .collect();
    let (rows, leases_total) = db.cluster_leases(limit, offset).await?;
    let leases = rows
        .into_iter()
        .map(|l| LeaseOut {
            device_id: l.device_id,
            node: l.node_id,
            epoch: l.epoch,
            acquired_at: ts(l.acquired_at),
            live: l.live,
        })
        .collect();
    let s = node.stats();
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let stats = NodeStatsOut {
        leases_taken: get(&s.leases_taken),
        leases_given_up: get(&s.leases_given_up),
        fenced_writes: get(&s.fenced_writes),
        resent_after_takeover: get(&s.resent_after_takeover),
        stopped_unrenewed: get(&s.stopped_unrenewed),
        rejoined: get(&s.rejoined),
        commands_run: get(&s.commands_run),
        commands_sent: get(&s.commands_sent),
    };
    Ok(ClusterOut { this_node: node.id().to_string(), nodes, leases, leases_total, limit, offset, stats })
}
