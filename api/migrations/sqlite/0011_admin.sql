-- Driver inquiries (a driver asks, an admin answers) and the audit log of admin actions.
CREATE TABLE inquiries (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    reservation_id TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    answer TEXT,
    answered_by TEXT,
    answered_at INTEGER
);
CREATE INDEX inquiries_by_user ON inquiries(user_id, created_at);
CREATE INDEX inquiries_unanswered ON inquiries(created_at) WHERE answered_at IS NULL;

-- One row per admin action, written in the transaction of the change it records.
CREATE TABLE admin_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
