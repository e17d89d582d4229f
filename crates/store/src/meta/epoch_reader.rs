//! The cache epoch read on SQLite without a hop to another thread.
//!
//! sqlx runs every SQLite connection on its own worker thread: a query through the
//! pool is a channel send, a wake-up of that thread and a wake-up back, which cost
//! more than the rest of an authenticated manifest read once its inputs are cached
//! (`docs/benchmarks.md`, "Hot path"). The epoch is one indexed row, so it is read
//! here synchronously, on the caller's thread, through a few dedicated connections
//! opened with SQLite's C API (the library sqlx already links).
//!
//! The guarantee is the pool's: each read is its own autocommit read transaction
//! (the statement is reset at once, so no snapshot is held between reads), and in
//! WAL mode a read transaction sees every transaction committed before it began, by
//! any connection or process. A reader never waits: the busy timeout is zero, so a
//! lock it cannot take (a WAL recovery, say) makes the read fail and the caller fall
//! back to the pool, which waits as before. In practice the read is the WAL-index
//! header check in shared memory plus a page that is already cached, or re-read
//! from the OS page cache after another connection's commit.

use std::ffi::{c_int, CString};
use std::ptr;
use std::sync::Mutex;

use libsqlite3_sys as ffi;

/// Connections kept idle (one per thread that reads at once; more are opened when
/// needed and closed after use).
const MAX_IDLE: usize = 4;
/// The page cache of each connection (KiB; SQLite's default is 2,000): the read
/// touches the schema page and one or two pages of `cache_epoch`.
const CACHE_KIB: i64 = 64;

pub(crate) struct EpochReader {
    path: CString,
    idle: Mutex<Vec<Conn>>,
}

impl EpochReader {
    /// A reader of the SQLite database at `url`, or `None` for an in-memory database
    /// (which no other connection could open) or a URL sqlx does not parse.
    pub(crate) fn for_url(url: &str) -> Option<EpochReader> {
        use std::str::FromStr;
        if url.contains(":memory:") || url.contains("mode=memory") {
            return None;
        }
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
        let path = opts.get_filename().to_str()?.to_string();
        let reader = EpochReader {
            path: CString::new(path).ok()?,
            idle: Mutex::new(Vec::new()),
        };
        // Refuse at once (and use the pool) when the file cannot be read this way.
        let c = reader.take()?;
        reader.give_back(c);
        Some(reader)
    }

    /// The epoch, or `None` when this read failed (the caller uses the pool).
    pub(crate) fn read(&self) -> Option<i64> {
        let c = self.take()?;
        let n = c.read()?;
        self.give_back(c);
        Some(n)
    }

    fn take(&self) -> Option<Conn> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(c) => Some(c),
            None => Conn::open(&self.path),
        }
    }

    fn give_back(&self, c: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(c);
        }
    }
}

/// One connection with its prepared statement; used by one thread at a time.
struct Conn {
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
}

// SAFETY: the connection is opened with SQLITE_OPEN_NOMUTEX ("multi-thread" mode):
// it may move between threads as long as two threads never use it at once, which
// owning `Conn` (taken out of the idle list, never shared) guarantees.
unsafe impl Send for Conn {}

impl Conn {
    fn open(path: &CString) -> Option<Conn> {
        let mut db = ptr::null_mut();
        // SAFETY: `path` is a NUL-terminated string; `db` receives a handle that
        // `Conn`'s Drop closes (sqlite3_open_v2 returns one even on failure).
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                path.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX,
                ptr::null(),
            )
        };
        let mut c = Conn {
            db,
            stmt: ptr::null_mut(),
        };
        if rc != ffi::SQLITE_OK || db.is_null() {
            return None;
        }
        // Never written through; a small page cache; never wait for a lock.
        let setup = format!("PRAGMA query_only=1; PRAGMA cache_size=-{CACHE_KIB};\0");
        // SAFETY: `db` is open; the SQL is NUL-terminated.
        let rc = unsafe {
            ffi::sqlite3_exec(
                db,
                setup.as_ptr().cast(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return None;
        }
        let sql = b"SELECT n FROM cache_epoch WHERE id = 1\0";
        // SAFETY: `db` is open; `sql` is NUL-terminated; the statement is
        // finalized in Drop.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(db, sql.as_ptr().cast(), -1, &mut c.stmt, ptr::null_mut())
        };
        if rc != ffi::SQLITE_OK || c.stmt.is_null() {
            return None;
        }
        Some(c)
    }

    /// One read transaction: the row, then a reset that ends the transaction.
    fn read(&self) -> Option<i64> {
        // SAFETY: `stmt` is a prepared statement of `db`, used by this thread only.
        unsafe {
            let rc: c_int = ffi::sqlite3_step(self.stmt);
            let n = (rc == ffi::SQLITE_ROW).then(|| ffi::sqlite3_column_int64(self.stmt, 0));
            let reset = ffi::sqlite3_reset(self.stmt);
            if reset != ffi::SQLITE_OK {
                return None;
            }
            n
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: both were created by this `Conn` and are not used after this.
        unsafe {
            if !self.stmt.is_null() {
                ffi::sqlite3_finalize(self.stmt);
            }
            if !self.db.is_null() {
                ffi::sqlite3_close(self.db);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reader sees each commit of the pool's connections at once, and costs
    /// microseconds (printed; run with `--nocapture`).
    #[tokio::test]
    async fn sees_every_commit_at_once() {
        let dir = std::env::temp_dir().join(format!("berth-epochr-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("m.db").display());
        let meta = crate::Meta::connect(&url).await.unwrap();
        let reader = EpochReader::for_url(&url).expect("a reader for a file database");
        for i in 0..20 {
            meta.ensure_account(&format!("1234567890{i:02}"), 0)
                .await
                .unwrap();
            let pool: i64 = sqlx::query_scalar("SELECT n FROM cache_epoch WHERE id = 1")
                .fetch_one(meta.pool())
                .await
                .unwrap();
            assert_eq!(reader.read(), Some(pool));
        }
        let t = std::time::Instant::now();
        for _ in 0..10_000 {
            reader.read().unwrap();
        }
        println!("epoch read: {:?} each", t.elapsed() / 10_000);
        assert!(EpochReader::for_url("sqlite::memory:").is_none());
        drop(reader);
        drop(meta);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
