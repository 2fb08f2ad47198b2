-- Tasks and their events. Every statement that changes a task also writes its event, in the
-- same statement (a data-modifying CTE), and bumps `version` so the live trigger publishes it.

-- name: create_tasks
-- Many creates in one statement (one commit, one trigger run, one NOTIFY): the API groups the
-- requests that arrive together. Ids come from the caller, so each request finds its row.
WITH input AS (
  SELECT * FROM unnest(%(ids)b::uuid[], %(types)b::text[], %(sources)b::text[], %(payloads)b::jsonb[], %(correlation_ids)b::text[],
                       %(trace_ids)b::text[], %(agent_slugs)b::text[], %(idempotency_keys)b::text[], %(max_attempts)b::int[])
    AS i(id, type, source, payload, correlation_id, trace_id, agent_slug, idempotency_key, max_attempts)
), ins AS (
  INSERT INTO tasks (id, type, source, payload, correlation_id, trace_id, agent_slug, idempotency_key, max_attempts)
  SELECT * FROM input
  ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING id, type, source, agent_slug, correlation_id, trace_id
), ev AS (
  INSERT INTO task_events (task_id, actor, kind, data, correlation_id, trace_id)
  SELECT id, source, 'created', jsonb_build_object('type', type, 'agent', agent_slug, 'source', source), correlation_id, trace_id FROM ins
)
SELECT id FROM ins

-- name: tasks_by_idempotency_keys
SELECT id, trace_id, status, agent_slug, idempotency_key FROM tasks WHERE idempotency_key = ANY(%(keys)b::text[])

-- name: get_task
SELECT * FROM tasks WHERE id = %(id)s

-- name: tasks_by_ids
SELECT * FROM tasks WHERE id = ANY(%(ids)s::uuid[])

-- name: task_events
SELECT * FROM task_events WHERE task_id = %(id)s ORDER BY id

-- name: patch_task
-- A status changed by hand moves the bookkeeping with it, so no task is left stuck: `queued` runs
-- again now; `running` gets a lease (re-queued if nobody finishes it); an end status finishes it
-- and drops the lease, so an answer still in flight is ignored. The same status leaves them alone.
WITH upd AS (
  UPDATE tasks t SET
    status = coalesce(%(status)s, t.status),
    result = CASE WHEN %(set_result)s THEN %(result)s ELSE t.result END,
    error = CASE WHEN %(set_error)s THEN %(error)s ELSE t.error END,
    payload = CASE WHEN %(set_payload)s THEN %(payload)s ELSE t.payload END,
    correlation_id = CASE WHEN %(set_correlation_id)s THEN %(correlation_id)s ELSE t.correlation_id END,
    run_after = CASE WHEN %(status)s = 'queued' AND t.status <> 'queued' THEN now() ELSE t.run_after END,
    lease_owner = CASE WHEN %(status)s IS NULL OR %(status)s = t.status THEN t.lease_owner
                       WHEN %(status)s = 'running' THEN 'patch:' || %(actor)s END,
    lease_expires_at = CASE WHEN %(status)s IS NULL OR %(status)s = t.status THEN t.lease_expires_at
                            WHEN %(status)s = 'running' THEN now() + make_interval(secs => %(manual_lease_s)s) END,
    finished_at = CASE WHEN %(status)s IS NULL OR %(status)s = t.status THEN t.finished_at
                       WHEN %(status)s IN ('done', 'error', 'cancelled') THEN now() END,
    version = t.version + 1,
    updated_at = now()
  WHERE t.id = %(id)s AND t.version = %(if_version)s
  RETURNING t.*
), ev AS (
  INSERT INTO task_events (task_id, actor, kind, data, correlation_id, trace_id)
  SELECT id, %(actor)s, %(kind)s, %(event_data)s, correlation_id, trace_id FROM upd
)
SELECT * FROM upd

-- name: cancel_task
WITH upd AS (
  UPDATE tasks SET status = 'cancelled', cancel_requested = true, version = version + 1,
    lease_owner = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now()
  WHERE id = %(id)s AND status IN ('queued', 'running')
  RETURNING *, (SELECT status FROM tasks WHERE id = %(id)s) AS previous_status
), ev AS (
  INSERT INTO task_events (task_id, actor, kind, data, correlation_id, trace_id)
  SELECT id, %(actor)s, 'cancelled', jsonb_build_object('status', 'cancelled', 'from', previous_status), correlation_id, trace_id FROM upd
)
SELECT * FROM upd

-- name: retry_task
WITH upd AS (
  UPDATE tasks SET status = 'queued', attempts = 0, run_after = now(), error = NULL, result = NULL,
    cancel_requested = false, finished_at = NULL, version = version + 1, updated_at = now()
  WHERE id = %(id)s AND status IN ('error', 'cancelled')
  RETURNING *
), ev AS (
  INSERT INTO task_events (task_id, actor, kind, data, correlation_id, trace_id)
  SELECT id, %(actor)s, 'retried', jsonb_build_object('status', 'queued'), correlation_id, trace_id FROM upd
)
SELECT * FROM upd

-- name: claim_tasks
-- Take up to n runnable tasks; SKIP LOCKED lets every instance claim without waiting on others.
WITH picked AS (
  SELECT id FROM tasks
  WHERE status = 'queued' AND run_after <= now() AND coalesce(agent_slug, '') <> ALL(%(unreachable)s::text[])
  ORDER BY run_after
  LIMIT %(n)s
  FOR UPDATE SKIP LOCKED
), upd AS (
  UPDATE tasks t SET status = 'running', attempts = t.attempts + 1, version = t.version + 1,
    lease_owner = %(owner)s, lease_expires_at = now() + make_interval(secs => %(lease_s)s),
    started_at = coalesce(t.started_at, now()), updated_at = now()
  FROM picked WHERE t.id = picked.id
  RETURNING t.*
), ev AS (
  INSERT INTO task_events (task_id, actor, kind, data, correlation_id, trace_id)
  SELECT id, 'orchestrator', 'running', jsonb_build_object('status', 'running', 'attempt', attempts, 'instance', %(owner)s, 'agent', agent_slug), correlation_id, trace_id FROM upd
)
SELECT * FROM upd

-- name: complete_tasks
-- Apply agent answers in one statement; the guard on owner, attempt and status drops any answer
-- from a superseded attempt (lease expired and re-claimed, or cancelled meanwhile).
WITH answers AS (
  SELECT * FROM unnest(%(ids)b::uuid[], %(attempts)b::int[], %(results)b::jsonb[]) AS a(id, attempt, result)
), upd AS (
  UPDATE tasks t SET status = 'done', result = a.result, error = NULL, version = t.version + 1,
    lease_owner = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now()
  FROM answers a
  WHERE t.id = a.id AND t.status = 'running' AND t.lease_owner = %(owner)s AND t.attempts = a.attempt
  RETURNING t.*
), ev AS (
  INSERT INTO task_events (task_id, actor, kind, data, correlation_id, trace_id)
  SELECT id, coalesce(agent_slug, 'agent'), 'done', jsonb_build_object('status', 'done', 'attempt', attempts), correlation_id, trace_id FROM upd
)
SELECT id FROM upd

-- name: fail_attempt
-- An attempt failed: schedule the next one after `delay_s`, or end in `error` past the limit
-- (or at once when `final`: the agent refused the task).
WITH upd AS (
  UPDATE tasks SET
    status = CASE WHEN (attempts >= max_attempts OR %(final)s) THEN 'error' ELSE 'queued' END,
    error = jsonb_build_object('message', %(message)s::text, 'attempts', attempts),
    run_after = now() + make_interval(secs => %(delay_s)s),
    finished_at = CASE WHEN (attempts >= max_attempts OR %(final)s) THEN now() ELSE NULL END,
    lease_owner = NULL, lease_expires_at = NULL, version = version + 1, updated_at = now()
  WHERE id = %(id)s AND status = 'running' AND lease_owner = %(owner)s AND attempts = %(attempt)s
  RETURNING *
), ev AS (
  INSERT INTO task_events (task_id, actor, kind, data, correlation_id, trace_id)
  SELECT id, 'orchestrator', CASE WHEN status = 'error' THEN 'error' ELSE 'retry_scheduled' END,
    jsonb_build_object('status', status, 'attempt', attempts, 'message', %(message)s::text, 'delay_s', %(delay_s)s), correlation_id, trace_id
  FROM upd
)
SELECT * FROM upd

-- name: give_back_attempt
-- The agent could not be reached at all (connection refused: restarting, deploying), so the
-- attempt did not happen: the task is queued again with its attempt given back and its place in
-- the queue (run_after) kept. The dispatcher stops claiming that agent's tasks until it answers
-- again; `expire_agent_waits` ends the ones that waited too long. One event per task and outage.
WITH cur AS (
  SELECT id, error->>'waitingForAgent' IS NOT NULL AS waiting FROM tasks
  WHERE id = %(id)s AND status = 'running' AND lease_owner = %(owner)s AND attempts = %(attempt)s
  FOR UPDATE
), upd AS (
  UPDATE tasks t SET status = 'queued', attempts = t.attempts - 1,
    error = jsonb_build_object('message', %(message)s::text, 'attempts', t.attempts - 1, 'waitingForAgent', t.agent_slug),
    lease_owner = NULL, lease_expires_at = NULL, version = t.version + 1, updated_at = now()
  FROM cur WHERE t.id = cur.id
  RETURNING t.*, cur.waiting
), ev AS (
  INSERT INTO task_events (task_id, actor, kind, data, correlation_id, trace_id)
  SELECT id, 'orchestrator', 'agent_unreachable',
    jsonb_build_object('status', 'queued', 'agent', agent_slug, 'message', %(message)s::text, 'waitS', %(wait_s)s), correlation_id, trace_id
  FROM upd WHERE NOT waiting
)
SELECT id FROM upd

-- name: expire_agent_waits
-- Queued tasks of an unreachable agent that have been due for longer than the wait: `error`.
WITH picked AS (
  SELECT id FROM tasks
  WHERE status = 'queued' AND agent_slug = %(agent)s AND run_after < now() - make_interval(secs => %(wait_s)s)
  ORDER BY run_after LIMIT 1000
  FOR UPDATE SKIP LOCKED
), upd AS (
  UPDATE tasks t SET status = 'error', error = jsonb_build_object('message', %(message)s::text, 'attempts', t.attempts),
    finished_at = now(), version = t.version + 1, updated_at = now()
  FROM picked WHERE t.id = picked.id
  RETURNING t.*
), ev AS (
  INSERT INTO task_events (task_id, actor, kind, data, correlation_id, trace_id)
  SELECT id, 'orchestrator', 'error', jsonb_build_object('status', 'error', 'attempt', attempts, 'message', %(message)s::text), correlation_id, trace_id
  FROM upd
)
SELECT id FROM upd

-- name: renew_leases
UPDATE tasks SET lease_expires_at = now() + make_interval(secs => %(lease_s)s)
WHERE id = ANY(%(ids)b::uuid[]) AND lease_owner = %(owner)s AND status = 'running'

-- name: reclaim_expired
-- Tasks whose instance died (lease not renewed): back to the queue, or `error` past the limit.
WITH expired AS (
  SELECT id FROM tasks WHERE status = 'running' AND lease_expires_at < now()
  ORDER BY lease_expires_at LIMIT 500 FOR UPDATE SKIP LOCKED
), upd AS (
  UPDATE tasks t SET
    status = CASE WHEN t.attempts >= t.max_attempts THEN 'error' ELSE 'queued' END,
    error = CASE WHEN t.attempts >= t.max_attempts
      THEN jsonb_build_object('message', 'lease expired: the instance running it stopped', 'attempts', t.attempts) ELSE t.error END,
    finished_at = CASE WHEN t.attempts >= t.max_attempts THEN now() ELSE NULL END,
    run_after = now(), lease_owner = NULL, lease_expires_at = NULL, version = t.version + 1, updated_at = now()
  FROM expired WHERE t.id = expired.id
  RETURNING t.*
), ev AS (
  INSERT INTO task_events (task_id, actor, kind, data, correlation_id, trace_id)
  SELECT id, 'orchestrator', 'lease_expired', jsonb_build_object('status', status, 'attempt', attempts), correlation_id, trace_id FROM upd
)
SELECT id FROM upd

-- name: insert_event
INSERT INTO task_events (task_id, actor, kind, data, correlation_id, trace_id)
SELECT id, %(actor)s, %(kind)s, %(data)s, coalesce(%(correlation_id)s, correlation_id), coalesce(%(trace_id)s, trace_id)
FROM tasks WHERE id = %(task_id)s
RETURNING *

-- name: tasks_by_types
SELECT * FROM tasks WHERE type = ANY(%(types)s::text[]) ORDER BY updated_at DESC, id DESC LIMIT %(limit)s

-- name: tasks_changed_since
-- The live bus's catch-up after a reconnect: every task changed since it last knew it listened.
SELECT id, version FROM tasks WHERE updated_at >= %(since)s ORDER BY updated_at LIMIT %(limit)s

-- name: outcomes_by_bucket
-- The overview chart: finished tasks per time bucket, with the p95 duration of the done ones.
SELECT to_char(date_trunc(%(unit)s, finished_at), 'HH24:MI') AS bucket,
       count(*) FILTER (WHERE status = 'done') AS done,
       count(*) FILTER (WHERE status = 'error') AS error,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       coalesce(round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at) * 1000)
         FILTER (WHERE status = 'done'))::numeric, 1), 0) AS p95_ms
FROM tasks
WHERE finished_at >= now() - %(window)s::interval AND status IN ('done', 'error', 'cancelled')
GROUP BY date_trunc(%(unit)s, finished_at)
ORDER BY date_trunc(%(unit)s, finished_at)

-- name: totals
SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'done' AND finished_at >= now() - %(window)s::interval) AS done,
       count(*) FILTER (WHERE status = 'error' AND finished_at >= now() - %(window)s::interval) AS error
FROM tasks
WHERE status IN ('queued', 'running') OR finished_at >= now() - %(window)s::interval

-- Task events ------------------------------------------------------------------------------

-- name: events_by_ids
SELECT * FROM task_events WHERE id = ANY(%(ids)s::bigint[])

-- name: event_ids_after
SELECT id FROM task_events WHERE id > %(after)s ORDER BY id LIMIT %(limit)s

-- name: live_position
-- Where the live streams stand: the highest log line and task event ids (one round trip).
SELECT (SELECT coalesce(max(id), 0) FROM logs) AS log, (SELECT coalesce(max(id), 0) FROM task_events) AS event

-- name: delete_old_events
-- Retention: at most `batch` rows per statement (short row locks), found through the `ts` index.
DELETE FROM task_events WHERE id IN (SELECT id FROM task_events WHERE ts < %(cutoff)s LIMIT %(batch)s)
