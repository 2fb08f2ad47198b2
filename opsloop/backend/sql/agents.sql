-- The agent registry (table agent_heartbeats): agents and app instances upsert themselves.

-- name: register
-- Upsert, and tell every instance (`a:<slug>` on the live channel) so none routes to an old URL.
WITH up AS (
  INSERT INTO agent_heartbeats (slug, kind, url, task_types, endpoint, meta, started_at, last_seen)
  VALUES (%(slug)s, %(kind)s, %(url)s, %(task_types)s, %(endpoint)s, %(meta)s, now(), now())
  ON CONFLICT (slug) DO UPDATE SET kind = EXCLUDED.kind, url = EXCLUDED.url, task_types = EXCLUDED.task_types,
    endpoint = EXCLUDED.endpoint, meta = EXCLUDED.meta, started_at = now(), last_seen = now()
  RETURNING *
)
SELECT up.* FROM up, LATERAL (SELECT pg_notify('opsloop_live', 'a:' || up.slug)) AS notified

-- name: heartbeat
UPDATE agent_heartbeats SET last_seen = now() WHERE slug = %(slug)s RETURNING *

-- name: list_all
SELECT *, extract(epoch FROM now() - last_seen) AS age_s FROM agent_heartbeats ORDER BY kind, slug
