//! One request of a session, served with the daemon's in-process instance.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use peergroup_core::events::EventFilter;
use peergroup_core::identity::PeerName;
use peergroup_core::service::proto::{
    ClientFrame, Request, Response, MAX_FRAME_LEN, RECORDS_PER_PART,
};
use peergroup_core::{CoreError, DatabaseProgress, GroupHandle};

use crate::session::{HeldHandle, Session};
use crate::{respond, send, Out, MAX_WAIT};

type Result<T, E = CoreError> = std::result::Result<T, E>;

fn peer_name(s: Option<String>) -> Result<Option<PeerName>> {
    Ok(s.map(|s| s.parse()).transpose()?)
}

/// Serves `frame` and writes its answer (in parts where it has them); false once the client
/// is gone.
pub(crate) async fn serve(session: &Arc<Session>, frame: ClientFrame, out: &Out) -> bool {
    let id = frame.id;
    let response = match frame.request {
        Request::EnumRecords(n, record_type) => {
            let records = match session.handle(n).await {
                Ok(h) => h.enum_records(record_type),
                Err(e) => Err(e),
            };
            return send_records(id, records, out).await;
        }
        Request::SearchRecords(n, criteria) => {
            let records = match session.handle(n).await {
                Ok(h) => h.search_records(&criteria),
                Err(e) => Err(e),
            };
            return send_records(id, records, out).await;
        }
        Request::ExportDatabase(n, path) => database(session, n, path, true, id, out).await,
        Request::ImportDatabase(n, path) => database(session, n, path, false, id, out).await,
        request => call(session, request).await,
    };
    let response = response.unwrap_or_else(|e| Response::error(&e));
    send(out, &respond(id, response)).await
}

/// Records in parts of at most [`RECORDS_PER_PART`] (and well under a frame).
async fn send_records(
    id: u32,
    records: Result<Vec<peergroup_core::records::record::Record>>,
    out: &Out,
) -> bool {
    let records = match records {
        Ok(r) => r,
        Err(e) => return send(out, &respond(id, Response::error(&e))).await,
    };
    let mut part = Vec::new();
    let mut bytes = 0;
    let mut iter = records.iter().peekable();
    while let Some(r) = iter.next() {
        let encoded = serde_bytes::ByteBuf::from(r.encode());
        bytes += encoded.len() + 8;
        part.push(encoded);
        let more = iter.peek().is_some();
        if part.len() == RECORDS_PER_PART || bytes > MAX_FRAME_LEN / 2 || !more {
            let response = Response::Records {
                records: std::mem::take(&mut part),
                more,
            };
            if !send(out, &respond(id, response)).await {
                return false;
            }
            bytes = 0;
        }
    }
    if records.is_empty() {
        let response = Response::Records {
            records: Vec::new(),
            more: false,
        };
        return send(out, &respond(id, response)).await;
    }
    true
}

/// A database export or import off the runtime, its progress sent as it comes (a stage's
/// steps coalesced to what the client has not seen yet).
async fn database(
    session: &Arc<Session>,
    n: u64,
    path: String,
    export: bool,
    id: u32,
    out: &Out,
) -> Result<Response> {
    let held = session.handle(n).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DatabaseProgress>();
    let task = tokio::task::spawn_blocking(move || {
        let h: &GroupHandle = &held;
        let path = Path::new(&path);
        let progress = |p| {
            let _ = tx.send(p);
        };
        if export {
            h.export_database_with(path, progress)
        } else {
            h.import_database_with(path, progress)
        }
    });
    while let Some(mut p) = rx.recv().await {
        while let Ok(next) = rx.try_recv() {
            if next.stage != p.stage {
                send(out, &respond(id, Response::Progress(p))).await;
            }
            p = next;
        }
        send(out, &respond(id, Response::Progress(p))).await;
    }
    let n = task
        .await
        .map_err(|e| CoreError::Database(format!("the database task failed: {e}")))??;
    Ok(Response::U64(n))
}

async fn call(session: &Arc<Session>, request: Request) -> Result<Response> {
    let pg = &session.pg;
    Ok(match request {
        Request::Hello { .. } | Request::Attach { .. } | Request::Events => {
            return Err(CoreError::ServiceMessage(
                "the session is already greeted".into(),
            ))
        }
        Request::LocalAddr => Response::Addr(pg.local_addr().await),
        Request::CreateGroup(properties) => {
            new_handle(session, pg.create_group(properties)?, false)
        }
        Request::OpenGroup { identity, group } => {
            let h = pg.open_group(peer_name(identity)?.as_ref(), &group.parse()?)?;
            new_handle(session, h, false)
        }
        Request::Join {
            identity,
            invitation,
        } => new_handle(
            session,
            pg.join(peer_name(identity)?.as_ref(), &invitation)?,
            false,
        ),
        Request::PasswordJoin {
            identity,
            invitation,
            password,
        } => {
            let (h, new) = pg
                .password_join(peer_name(identity)?.as_ref(), &invitation, &password)
                .await?;
            new_handle(session, h, new)
        }
        Request::DeleteGroup { identity, group } => {
            pg.delete_group(peer_name(identity)?.as_ref(), &group.parse()?)
                .await?;
            Response::Ok
        }
        Request::ImportConfig {
            xml,
            password,
            overwrite,
        } => {
            let (i, g) = pg.import_config(&xml, &password, overwrite)?;
            Response::Names(i.to_string(), g.to_string())
        }
        Request::Close(n) => Response::Ended(session.close_handle(n).await?),
        Request::Unsubscribe(id) => {
            session.unsubscribe(id)?;
            Response::Ok
        }
        Request::ReleaseHold(id) => {
            session.release_hold(id);
            Response::Ok
        }
        Request::Subscribe {
            handle,
            id,
            registrations,
            capacity,
        } => {
            if registrations.is_empty() {
                return Err(CoreError::InvalidRegistration("no event kind".into()));
            }
            let sub = session.handle(handle).await?.subscribe_with(
                EventFilter::new(registrations),
                capacity as usize,
                None,
            )?;
            session.add_subscription(handle, id, sub)?;
            Response::Ok
        }
        Request::ResumePasswordAuthentication(n, hold) => {
            let h = session.handle(n).await?;
            session.with_hold(hold, |x| h.resume_password_authentication(x))?;
            Response::Ok
        }
        Request::HoldPasswordAuthentication(n) => {
            let hold = session.handle(n).await?.hold_password_authentication()?;
            Response::U64(session.add_hold(n, hold))
        }
        request => {
            let n = handle_of(&request);
            on_handle(&session.handle(n).await?, request).await?
        }
    })
}

fn new_handle(session: &Session, h: GroupHandle, flag: bool) -> Response {
    let (handle, (identity, group)) = session.add_handle(h);
    Response::Handle {
        handle,
        identity: identity.to_string(),
        group: group.to_string(),
        flag,
    }
}

/// The handle a per-handle request names.
fn handle_of(request: &Request) -> u64 {
    use Request as R;
    match request {
        R::GetRecord(n, _)
        | R::EnumRecords(n, _)
        | R::SearchRecords(n, _)
        | R::ExportDatabase(n, _)
        | R::ImportDatabase(n, _)
        | R::HoldPasswordAuthentication(n)
        | R::ResumePasswordAuthentication(n, _)
        | R::Close(n) => *n,
        R::Group { handle, .. }
        | R::WaitStatus { handle, .. }
        | R::Subscribe { handle, .. }
        | R::Connect { handle, .. }
        | R::SendData { handle, .. } => *handle,
        // Not per handle: no handle has number 0.
        _ => 0,
    }
}

/// A request on one handle.
async fn on_handle(h: &HeldHandle, request: Request) -> Result<Response> {
    use Request as R;
    Ok(match request {
        // Every call that answers once, generically: the handle runs it in-process.
        R::Group { call, .. } => Response::Group(h.run_call(call)?),
        R::WaitStatus {
            bits, timeout_ms, ..
        } => {
            let wait = Duration::from_millis(timeout_ms).min(MAX_WAIT);
            Response::U32(h.wait_status(bits, wait).await?)
        }
        R::Connect { addrs, .. } => {
            h.connect_by_address(&addrs).await?;
            Response::Ok
        }
        R::GetRecord(_, id) => Response::Record(h.get_record(&id)?.encode()),
        R::SendData {
            connection,
            data_type,
            data,
            ..
        } => {
            h.send_data(connection, &data_type, &data).await?;
            Response::Ok
        }
        other => {
            return Err(CoreError::ServiceMessage(format!(
                "request {other:?} is not served on a handle"
            )))
        }
    })
}
