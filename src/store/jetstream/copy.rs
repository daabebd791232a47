//! This node's copy of the stream: checked against the stream at start, emptied when it
//! differs.

use super::*;

/// The head of this node's copy of the stream at `path`, if the stream holds the same record
/// there; otherwise the copy is emptied (with a warning naming why) and the head is empty.
pub(super) async fn check_copy(stream: &stream::Stream, path: &Path, last: u64) -> Result<Head, StoreError> {
    let at = path.to_owned();
    let read = tokio::task::spawn_blocking(move || {
        // sled panics on some damage to its own files: a copy that does not open is replaced.
        std::panic::catch_unwind(|| SledStore::head_at(&at))
            .unwrap_or_else(|_| Err(StoreError::io("the storage engine panicked reading it")))
    })
    .await
    .map_err(|e| io(format!("reading this node's copy of the stream: {e}")))?;
    let head = match read {
        Ok(head) => head,
        Err(e) => {
            wipe_copy(path, &format!("it does not open ({e})")).await?;
            return Ok(Head::default());
        }
    };
    if head.revision == 0 {
        return Ok(head);
    }
    let why = if head.revision > last {
        format!("it holds revision {}, but the stream ends at {last}", head.revision)
    } else {
        match stream.get_raw_message(head.revision).await {
            Ok(m) if m.payload.get(..32) == Some(&head.hash.0[..]) => return Ok(head),
            Ok(_) => format!(
                "its revision {} is not the stream's (another stream under the same name)",
                head.revision
            ),
            Err(e) => {
                return Err(io(format!(
                    "reading revision {} of the JetStream stream to check this node's copy: {e}",
                    head.revision
                )))
            }
        }
    };
    wipe_copy(path, &why).await?;
    Ok(Head::default())
}

/// Removes the copy at `path`, saying why.
pub(super) async fn wipe_copy(path: &Path, why: &str) -> Result<(), StoreError> {
    tracing::warn!(path = %path.display(), reason = %why, "emptying this node's copy of the JetStream stream: it is fetched again");
    let at = path.to_owned();
    tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&at) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    })
    .await
    .map_err(|e| io(format!("emptying this node's copy of the stream: {e}")))?
    .map_err(|e| {
        io(format!(
            "emptying this node's copy of the stream at {}: {e}",
            path.display()
        ))
    })
}
