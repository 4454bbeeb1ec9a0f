-- videofleet schema, plain SQL that applies as-is to SQLite and Cloudflare D1:
--   sqlite3 videofleet.db < schema/d1.sql
--   npx wrangler d1 execute video-metadata --remote --file schema/d1.sql
-- The first nine columns of video_processing_tasks are the reference design's, unchanged.
-- created_at / updated_at are INTEGER milliseconds since the Unix epoch (UTC).
-- The Alembic migrations under schema/migrations build the same schema on SQLite and PostgreSQL.

CREATE TABLE IF NOT EXISTS video_processing_tasks (
  id TEXT PRIMARY KEY,
  video_key TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending',
  workflow_id TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  metadata TEXT,
  error_message TEXT,
  retry_count INTEGER DEFAULT 0,
  bucket TEXT,
  etag TEXT,
  video_id TEXT,
  step TEXT
);
CREATE INDEX IF NOT EXISTS idx_tasks_status ON video_processing_tasks(status);
CREATE INDEX IF NOT EXISTS idx_tasks_created ON video_processing_tasks(created_at);
CREATE INDEX IF NOT EXISTS idx_tasks_video_key ON video_processing_tasks(video_key);

CREATE TABLE IF NOT EXISTS videos (
  id TEXT PRIMARY KEY,
  r2_key TEXT NOT NULL,
  filename TEXT,
  content_type TEXT,
  size_bytes INTEGER,
  status TEXT NOT NULL DEFAULT 'uploading',
  thumbnail_url TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  owner TEXT,
  upload_id TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_videos_r2_key ON videos(r2_key);
CREATE INDEX IF NOT EXISTS idx_videos_status ON videos(status);
CREATE UNIQUE INDEX IF NOT EXISTS idx_videos_upload_id ON videos(upload_id);

-- The bucket poller's progress per (bucket, prefix): LastModified watermark (epoch ms), the
-- resumable position of an unfinished scan, and the (key, eTag) already emitted since the
-- watermark as a JSON object. See producer/transports/poller.py.
CREATE TABLE IF NOT EXISTS poller_watermarks (
  bucket TEXT NOT NULL,
  prefix TEXT NOT NULL,
  since_ms INTEGER NOT NULL,
  scan_cursor TEXT,
  scan_max_ms INTEGER NOT NULL,
  seen TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (bucket, prefix)
);

-- Notifications the producer could not use (malformed, unknown format): recorded, never retried.
-- body is the raw body as text, truncated to 64 KiB.
CREATE TABLE IF NOT EXISTS rejected_events (
  id TEXT PRIMARY KEY,
  source TEXT NOT NULL,
  reason TEXT NOT NULL,
  body TEXT,
  message_id TEXT,
  received_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_rejected_received ON rejected_events(received_at);
