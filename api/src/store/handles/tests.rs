//! The embedded store's connections: statements in place, locks, group commit.

use super::*;
use sqlx::Row;
use std::sync::Arc;

fn database(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("t.db");
    let create = rusqlite::Connection::open(&path).unwrap();
    create
        .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
        .unwrap();
    path
}

fn text(s: &str) -> AnyValueKind {
    AnyValueKind::Text(Arc::new(s.to_owned()))
}

#[tokio::test]
async fn parameters_take_their_numbered_arguments_and_rows_read_back_typed() {
    let dir = tempfile::tempdir().unwrap();
    let set = Connections::new(vec![Connection::open(&database(&dir), 0).unwrap()]);
    let mut c = set.lend().await;
    let done = c
        .run(
            "SELECT $2 AS b, $1 AS a, $2 AS again, 1.5 AS x, NULL AS n",
            &[AnyValueKind::BigInt(7), text("é,\n")],
            true,
        )
        .await
        .unwrap();
    let row = &done.rows[0];
    assert_eq!(row.get::<String, _>("b"), "é,\n");
    assert_eq!(row.get::<i64, _>("a"), 7);
    assert_eq!(row.get::<String, _>("again"), "é,\n");
    assert_eq!(row.get::<f64, _>("x"), 1.5);
    assert_eq!(row.get::<Option<i64>, _>("n"), None);
    // A parameter with no argument is an error, not a NULL.
    assert!(c.run("SELECT $3", &[], true).await.is_err());
}

#[tokio::test]
async fn a_unique_violation_is_reported_as_one_and_counts_changes() {
    let dir = tempfile::tempdir().unwrap();
    let set = Connections::new(vec![Connection::open(&database(&dir), 0).unwrap()]);
    let mut c = set.lend().await;
    let insert = "INSERT INTO t (name) VALUES ($1)";
    let done = c.run(insert, &[text("a")], true).await.unwrap();
    assert_eq!(done.rows_affected, 1);
    let Err(sqlx::Error::Database(e)) = c.run(insert, &[text("a")], true).await else {
        panic!("a second `a` must be refused");
    };
    assert!(e.is_unique_violation(), "{e}");
}

#[tokio::test]
async fn a_connection_given_back_mid_transaction_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let set = Connections::new(vec![Connection::open(&database(&dir), 0).unwrap()]);
    let mut c = set.lend().await;
    c.run("BEGIN IMMEDIATE", &[], true).await.unwrap();
    c.run("INSERT INTO t (name) VALUES ('lost')", &[], true)
        .await
        .unwrap();
    drop(c);
    let mut c = set.lend().await;
    let done = c
        .run("SELECT COUNT(*) AS n FROM t", &[], true)
        .await
        .unwrap();
    assert_eq!(done.rows[0].get::<i64, _>("n"), 0);
    c.run("BEGIN IMMEDIATE", &[], true).await.unwrap();
}

/// Another process's lock is waited for by sleeping asynchronously: on a single-threaded
/// runtime the task that releases the lock still runs while the write waits.
#[tokio::test(flavor = "current_thread")]
async fn a_lock_held_elsewhere_is_waited_for_without_blocking_the_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(&dir);
    let set = Connections::new(vec![Connection::open(&path, 0).unwrap()]);
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let held = Duration::from_millis(100);
    let release = tokio::spawn(async move {
        tokio::time::sleep(held).await;
        other.execute_batch("COMMIT").unwrap();
    });
    let started = Instant::now();
    let mut c = set.lend().await;
    c.run("BEGIN IMMEDIATE", &[], true).await.unwrap();
    assert!(started.elapsed() >= held, "the write waited for the lock");
    // A busy handler sleeping in SQLite would have kept the release from running until
    // it gave up (seconds).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    release.await.unwrap();
}

/// Rows of `t` as another connection sees them: what is committed.
fn committed(path: &std::path::Path) -> Vec<String> {
    let other = rusqlite::Connection::open(path).unwrap();
    let mut rows = other.prepare("SELECT name FROM t ORDER BY id").unwrap();
    rows.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A set of one writer connection on a fresh `t`, in WAL mode as the store's.
fn writer(dir: &tempfile::TempDir) -> (Arc<Connections>, std::path::PathBuf) {
    let path = database(dir);
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "journal_mode", "WAL")
        .unwrap();
    let set = Arc::new(Connections::writer(Connection::open(&path, 0).unwrap()).unwrap());
    (set, path)
}

/// Yield until `n` tasks wait for the connection.
async fn until_waiting(set: &Connections, n: usize) {
    while set.waiting.load(Ordering::SeqCst) != n {
        tokio::task::yield_now().await;
    }
}

async fn insert(c: &mut SqliteConn, name: &str) -> Result<Done, sqlx::Error> {
    c.run("INSERT INTO t (name) VALUES ($1)", &[text(name)], true)
        .await
}

/// A change of its own that inserts `name`, committed (or, in a batch, answered).
async fn change(set: &Connections, name: &str) {
    let mut c = set.begin_change().await.unwrap();
    insert(&mut c, name).await.unwrap();
    c.commit().await.unwrap();
}

/// A change that commits while another waits for the writer is not reported written (nor
/// visible) until the one after it commits both in one transaction.
#[tokio::test(flavor = "current_thread")]
async fn a_change_committed_while_another_waits_is_written_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (set, path) = writer(&dir);
    let mut a = set.begin_change().await.unwrap();
    let next = set.clone();
    let b = tokio::spawn(async move {
        let mut b = next.begin_change().await.unwrap();
        insert(&mut b, "b").await.unwrap();
        b.release().unwrap().await.unwrap()
    });
    until_waiting(&set, 1).await;
    insert(&mut a, "a").await.unwrap();
    let mut told_a = a.release().unwrap();
    assert!(told_a.try_recv().is_err(), "not committed yet");
    assert!(committed(&path).is_empty());
    b.await.unwrap().unwrap();
    assert_eq!(told_a.await.unwrap(), Ok(()));
    assert_eq!(committed(&path), ["a", "b"]);
}

/// A change that fails inside a group rolls back to its savepoint: the change before it is
/// still committed, and it reports its own failure.
#[tokio::test(flavor = "current_thread")]
async fn a_failed_change_in_a_group_takes_no_one_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (set, path) = writer(&dir);
    let mut a = set.begin_change().await.unwrap();
    let next = set.clone();
    let b = tokio::spawn(async move {
        let mut b = next.begin_change().await.unwrap();
        insert(&mut b, "b").await.unwrap();
        let duplicate = insert(&mut b, "a").await.map(|_| ());
        b.roll_back().unwrap();
        duplicate
    });
    until_waiting(&set, 1).await;
    insert(&mut a, "a").await.unwrap();
    let told_a = a.release().unwrap();
    let duplicate = b.await.unwrap().unwrap_err();
    assert!(duplicate.as_database_error().unwrap().is_unique_violation());
    assert_eq!(told_a.await.unwrap(), Ok(()));
    assert_eq!(committed(&path), ["a"]);
    // The writer is out of the transaction: a change begins afresh.
    let mut c = set.begin_change().await.unwrap();
    insert(&mut c, "c").await.unwrap();
    assert_eq!(c.release().unwrap().await.unwrap(), Ok(()));
    assert_eq!(committed(&path), ["a", "c"]);
}

/// A change dropped in a group (its task cancelled) is undone alone; a lent connection commits
/// the waiting group before its statements run.
#[tokio::test(flavor = "current_thread")]
async fn a_dropped_change_is_undone_and_a_lent_connection_commits_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let (set, path) = writer(&dir);
    let mut a = set.begin_change().await.unwrap();
    let next = set.clone();
    let b = tokio::spawn(async move {
        let mut b = next.begin_change().await.unwrap();
        insert(&mut b, "dropped").await.unwrap();
    });
    let plain = set.clone();
    until_waiting(&set, 1).await;
    insert(&mut a, "a").await.unwrap();
    let told_a = a.release().unwrap();
    b.await.unwrap();
    // B gave the connection back with no one waiting: A's group committed without B.
    assert_eq!(told_a.await.unwrap(), Ok(()));
    assert_eq!(committed(&path), ["a"]);

    let mut c = set.begin_change().await.unwrap();
    let reader = tokio::spawn(async move {
        let mut p = plain.lend().await;
        let n = p
            .run("SELECT COUNT(*) AS n FROM t", &[], true)
            .await
            .unwrap();
        n.rows[0].get::<i64, _>("n")
    });
    until_waiting(&set, 1).await;
    insert(&mut c, "c").await.unwrap();
    let told_c = c.release().unwrap();
    assert_eq!(reader.await.unwrap(), 2);
    assert_eq!(told_c.await.unwrap(), Ok(()));
    assert_eq!(committed(&path), ["a", "c"]);
}

/// A change alone in its transaction (no savepoint) rolls the transaction back, whether told
/// to or dropped.
#[tokio::test(flavor = "current_thread")]
async fn a_change_alone_is_undone_with_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (set, path) = writer(&dir);
    let mut a = set.begin_change().await.unwrap();
    insert(&mut a, "undone").await.unwrap();
    a.roll_back().unwrap();
    let mut b = set.begin_change().await.unwrap();
    insert(&mut b, "dropped").await.unwrap();
    drop(b);
    let mut c = set.begin_change().await.unwrap();
    insert(&mut c, "c").await.unwrap();
    assert_eq!(c.release().unwrap().await.unwrap(), Ok(()));
    assert_eq!(committed(&path), ["c"]);
}

/// One statement run on the writer outside a change joins the group of the change it queued
/// behind and returns once that group committed; one that fails is undone alone.
#[tokio::test(flavor = "current_thread")]
async fn a_statement_on_the_writer_is_a_change_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (set, path) = writer(&dir);
    let handle = Handle::Sqlite(set.clone());
    let mut a = set.begin_change().await.unwrap();
    let h = handle.clone();
    let b = tokio::spawn(async move {
        let done = sqlx::query("INSERT INTO t (name) VALUES ('b')")
            .execute(&h)
            .await;
        done.map(|d| d.rows_affected())
    });
    let h = handle.clone();
    let duplicate = tokio::spawn(async move {
        let done = sqlx::query("INSERT INTO t (name) VALUES ('a')")
            .execute(&h)
            .await;
        done.map(|_| ())
    });
    until_waiting(&set, 2).await;
    insert(&mut a, "a").await.unwrap();
    let mut told_a = a.release().unwrap();
    assert!(told_a.try_recv().is_err(), "not committed yet");
    assert!(committed(&path).is_empty());
    assert_eq!(b.await.unwrap().unwrap(), 1);
    let refused = duplicate.await.unwrap().unwrap_err();
    assert!(refused.as_database_error().unwrap().is_unique_violation());
    assert_eq!(told_a.await.unwrap(), Ok(()));
    assert_eq!(committed(&path), ["a", "b"]);
    // Alone, a statement commits by itself.
    let done = sqlx::query("INSERT INTO t (name) VALUES ('c')")
        .execute(&handle)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    assert_eq!(committed(&path), ["a", "b", "c"]);
}

/// A change that no one queues behind yields before it commits: a task ready to run joins
/// its transaction, and one commit writes both (the second is written before its own task
/// runs again).
#[tokio::test(flavor = "current_thread")]
async fn a_change_alone_lets_ready_tasks_join_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (set, path) = writer(&dir);
    let mut a = set.begin_change().await.unwrap();
    let next = set.clone();
    let b = tokio::spawn(async move {
        let mut b = next.begin_change().await.unwrap();
        insert(&mut b, "b").await.unwrap();
        b.commit().await
    });
    insert(&mut a, "a").await.unwrap();
    a.commit().await.unwrap();
    assert_eq!(committed(&path), ["a", "b"]);
    assert!(!b.is_finished(), "b's own task did not commit it");
    b.await.unwrap().unwrap();
    // Alone, with nothing ready, a change commits after its yield.
    change(&set, "c").await;
    assert_eq!(committed(&path), ["a", "b", "c"]);
}

/// A change whose commit is given up at its yield (its task cancelled) is still committed,
/// and so are the changes of its group: none waits for the writer's next use.
#[tokio::test(flavor = "current_thread")]
async fn a_commit_given_up_at_its_yield_still_commits_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let (set, path) = writer(&dir);
    let mut a = set.begin_change().await.unwrap();
    insert(&mut a, "a").await.unwrap();
    // The commit is polled once, to its yield, and dropped.
    let mut commit = Box::pin(a.commit());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(commit.as_mut().poll(&mut cx).is_pending(), "at its yield");
    assert!(committed(&path).is_empty());
    drop(commit);
    assert_eq!(committed(&path), ["a"]);
    // The writer is free and out of the transaction.
    change(&set, "b").await;
    assert_eq!(committed(&path), ["a", "b"]);
}

/// A task that gives up its wait for the writer after a change handed it the group's open
/// transaction commits that group: the change is not left waiting for the writer's next use.
#[tokio::test(flavor = "current_thread")]
async fn a_wait_given_up_after_the_group_was_handed_to_it_commits_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let (set, path) = writer(&dir);
    let mut a = set.begin_change().await.unwrap();
    let next = set.clone();
    let b = tokio::spawn(async move {
        let _b = next.begin_change().await;
    });
    until_waiting(&set, 1).await;
    insert(&mut a, "a").await.unwrap();
    // B waits, so A leaves the transaction open for it; then B's task is cancelled.
    let told_a = a.release().unwrap();
    b.abort();
    assert!(b.await.unwrap_err().is_cancelled());
    let outcome = tokio::time::timeout(Duration::from_secs(1), told_a).await;
    let outcome = outcome.expect("committed without another use of the writer");
    assert_eq!(outcome.unwrap(), Ok(()));
    assert_eq!(committed(&path), ["a"]);
}

/// In a batch a change is answered at once and written at the batch's commit; a change that
/// fails is undone alone, and a statement or a read on the writer runs inside the batch. Once
/// finished, each change commits on its own again.
#[tokio::test(flavor = "current_thread")]
async fn a_batch_answers_each_change_at_once_and_writes_them_at_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (set, path) = writer(&dir);
    let handle = Handle::Sqlite(set.clone());
    let batch = batch::Batch::begin(&set).await.unwrap();
    change(&set, "a").await;
    let mut b = set.begin_change().await.unwrap();
    insert(&mut b, "b").await.unwrap();
    let Err(duplicate) = insert(&mut b, "a").await else {
        panic!("a second `a` must be refused");
    };
    assert!(duplicate.as_database_error().unwrap().is_unique_violation());
    b.roll_back().unwrap();
    sqlx::query("INSERT INTO t (name) VALUES ('c')")
        .execute(&handle)
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&handle)
        .await
        .unwrap();
    assert_eq!(seen, 2, "the batch reads its own changes");
    assert!(
        committed(&path).is_empty(),
        "nothing written before the commit"
    );
    let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
        .fetch_one(&handle)
        .await
        .unwrap();
    assert_eq!(
        cache, -65_536,
        "the batch's pages stay in the cache until it commits"
    );
    batch.commit().await.unwrap();
    assert_eq!(committed(&path), ["a", "c"]);
    change(&set, "d").await;
    assert_eq!(
        committed(&path),
        ["a", "c"],
        "after a commit the batch goes on"
    );
    batch.finish().await.unwrap();
    assert_eq!(committed(&path), ["a", "c", "d"]);
    change(&set, "e").await;
    assert_eq!(
        committed(&path),
        ["a", "c", "d", "e"],
        "one commit per change again"
    );
    let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
        .fetch_one(&handle)
        .await
        .unwrap();
    assert_eq!(cache, -2_000, "SQLite's default again");
}

/// A batch dropped unfinished (its owner failed) discards what it did not commit; only one
/// batch runs at a time.
#[tokio::test(flavor = "current_thread")]
async fn a_batch_dropped_unfinished_discards_what_it_did_not_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (set, path) = writer(&dir);
    let batch = batch::Batch::begin(&set).await.unwrap();
    assert!(
        batch::Batch::begin(&set).await.is_err(),
        "one batch at a time"
    );
    change(&set, "a").await;
    batch.commit().await.unwrap();
    change(&set, "b").await;
    drop(batch);
    assert_eq!(committed(&path), ["a"]);
    change(&set, "c").await;
    assert_eq!(committed(&path), ["a", "c"]);
}

/// Through the store: while a batch runs, `pool()` reads on the writer and sees the batch's
/// changes, which another connection sees only once the batch is finished.
#[tokio::test(flavor = "current_thread")]
async fn in_a_batch_the_stores_reads_see_what_it_has_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = crate::store::Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let users = "SELECT COUNT(*) FROM users";
    let elsewhere = || -> i64 {
        rusqlite::Connection::open(&path)
            .unwrap()
            .query_row(users, [], |r| r.get(0))
            .unwrap()
    };
    let batch = store.begin_batch().await.unwrap();
    let mut change = store.begin_change(chrono::Utc::now()).await.unwrap();
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, role, created_at)
         VALUES ('u1', 'u1@example.com', 'x', 'driver', 0)",
    )
    .execute(&mut *change)
    .await
    .unwrap();
    change.commit().await.unwrap();
    let seen: i64 = sqlx::query_scalar(users)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!((seen, elsewhere()), (1, 0));
    batch.finish().await.unwrap();
    assert_eq!(elsewhere(), 1);
    let seen: i64 = sqlx::query_scalar(users)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(seen, 1, "the readers again");
}

/// The bundled SQLite is built as `.cargo/config.toml` says: without the memory management
/// that puts every connection's page cache behind one global mutex, and without memory
/// statistics (a global mutex on each allocation) — the writer and the readers run at once on
/// different threads.
#[tokio::test]
async fn the_bundled_sqlite_shares_no_page_cache_and_counts_no_memory() {
    let done = on_a_store_connection("PRAGMA compile_options").await;
    let options: Vec<String> = done.rows.iter().map(|r| r.get::<String, _>(0)).collect();
    assert!(options.iter().any(|o| o == "THREADSAFE=1"), "{options:?}");
    assert!(
        !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
        "{options:?}"
    );
    assert!(
        options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
        "{options:?}"
    );
}

/// The store's connections keep temporary storage — the sub-journal of each savepoint the group
/// commit opens — in memory, not in a file written page by page.
#[tokio::test]
async fn savepoints_journal_in_memory() {
    let done = on_a_store_connection("PRAGMA temp_store").await;
    // 2 is MEMORY (0 the compile-time default, a file here; 1 FILE).
    assert_eq!(done.rows[0].get::<i64, _>(0), 2);
}

/// What `sql` gives on a connection opened as the store opens its own.
async fn on_a_store_connection(sql: &str) -> Done {
    let dir = tempfile::tempdir().unwrap();
    let set = Connections::new(vec![Connection::open(&database(&dir), 0).unwrap()]);
    set.lend().await.run(sql, &[], true).await.unwrap()
}

/// The writer's watch: a transaction is open from its begin to its commit or rollback; another
/// connection's commit is found by the writer's next begin, a passive checkpoint is not a commit.
#[tokio::test]
async fn the_writer_finds_other_connections_commits_when_it_begins() {
    let dir = tempfile::tempdir().unwrap();
    let (set, path) = writer(&dir);
    let watch = set.watch().expect("the writer is watched").clone();
    assert_eq!(watch.open(), None);
    let c = set.begin_change().await.unwrap();
    let open = watch.open().expect("a change's transaction is open");
    assert_eq!(open.foreign_commits, 0);
    c.commit().await.unwrap();
    assert!(!watch.still_open(open));
    assert_eq!(watch.open(), None);

    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch("INSERT INTO t (name) VALUES ('theirs')")
        .unwrap();
    assert_eq!(
        watch.foreign_commits(),
        0,
        "found only when the writer begins"
    );
    let c = set.begin_change().await.unwrap();
    assert_eq!(watch.open().unwrap().foreign_commits, 1);
    c.roll_back().unwrap();
    assert_eq!(watch.open(), None, "a rollback ends it too");

    let _: (i64, i64, i64) = other
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    set.one(sqlx::query("INSERT INTO t (name) VALUES ('mine')"))
        .await
        .unwrap();
    assert_eq!(watch.foreign_commits(), 1, "a checkpoint changes no data");
}
