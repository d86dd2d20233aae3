// Errors of the journal client. Every error the server answers carries its
// stable code (the server's error body: {"error": {"code", "message",
// "field", ...}}); failures that never got an answer have codes of their own.

/** Codes of failures that never reached an answer from the server. */
export const CLIENT_CODES = Object.freeze({
  UNAVAILABLE: 'unavailable', // the server could not be reached, or the connection broke
  TIMEOUT: 'timeout', // no answer within timeoutMs
  BAD_ANSWER: 'bad_answer', // an answer that is not the documented JSON
  ABORTED: 'aborted', // the caller's AbortSignal fired
});

// 5xx answers that a retry would only repeat: the journal's write path
// failed and stays failed until an operator reopens it. Every other 5xx
// (internal, closed, starting, canceled, queue_full, a proxy's 502/504) is
// worth another try.
const REFUSALS = new Set(['journal_failed']);

/**
 * JournalError is every error of the client. code is the server's stable
 * code (invalid_change, unknown_surface, policy_violation, event_id_conflict,
 * unauthorized, compacted, too_large, journal_failed, ...) or one of
 * CLIENT_CODES; status is the HTTP status (0 without an answer).
 */
export class JournalError extends Error {
  constructor(message, { code, status = 0, body = {}, cause, outcomeUnknown = false, changes } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'JournalError';
    this.code = code;
    this.status = status;
    for (const k of ['field', 'value', 'problem', 'allowed', 'suggestion', 'index', 'after', 'horizon', 'resume_after']) {
      if (body[k] !== undefined) this[k === 'resume_after' ? 'resumeAfter' : k] = body[k];
    }
    if (body.request_id !== undefined) this.requestId = body.request_id;
    /** retryAfterMs is the server's Retry-After, when it sent one. */
    this.retryAfterMs = undefined;
    /**
     * outcomeUnknown is true when a write may or may not have been recorded
     * (the connection broke, the answer timed out, or the server failed
     * mid-write). Retrying with the same event ids (error.changes) is
     * exactly-once: the journal's dedupe answers duplicate:true for those
     * already written.
     */
    this.outcomeUnknown = outcomeUnknown;
    if (changes) this.changes = changes;
  }
}

/** ValidationError: the server refused the input (400/422); nothing was written. */
export class ValidationError extends JournalError {
  constructor(message, opts) {
    super(message, opts);
    this.name = 'ValidationError';
  }
}

/** UnauthorizedError: a missing or wrong token (401). */
export class UnauthorizedError extends JournalError {
  constructor(message, opts) {
    super(message, opts);
    this.name = 'UnauthorizedError';
  }
}

/** ConflictError: the same event_id with different content (event_id_conflict), or a locked journal. */
export class ConflictError extends JournalError {
  constructor(message, opts) {
    super(message, opts);
    this.name = 'ConflictError';
  }
}

/** CompactedError: a cursor below the horizon (410); resync, then resume after error.resumeAfter. */
export class CompactedError extends JournalError {
  constructor(message, opts) {
    super(message, opts);
    this.name = 'CompactedError';
  }
}

/** RateLimitedError: 429; error.retryAfterMs says when to come back. */
export class RateLimitedError extends JournalError {
  constructor(message, opts) {
    super(message, opts);
    this.name = 'RateLimitedError';
  }
}

/** UnavailableError: no answer (connection refused or broken, timeout) or a server failure (5xx). */
export class UnavailableError extends JournalError {
  constructor(message, opts) {
    super(message, opts);
    this.name = 'UnavailableError';
  }
}

/** isJournalError reports whether err is a JournalError, with the given code when one is given. */
export function isJournalError(err, code) {
  return err instanceof JournalError && (code === undefined || err.code === code);
}

/** errorFromAnswer builds the error of an HTTP error answer. */
export function errorFromAnswer(status, headers, text, { write = false, changes } = {}) {
  let body;
  try {
    body = JSON.parse(text).error;
  } catch {
    body = undefined;
  }
  if (!body || typeof body.code !== 'string') {
    const shown = String(text).trim().slice(0, 200);
    body = { code: status >= 500 ? 'internal' : CLIENT_CODES.BAD_ANSWER, message: shown || `HTTP ${status}` };
  }
  const code = body.code;
  const message = `journal: ${code} (${status}): ${body.message ?? ''}`.trim();
  // A write answered 5xx may have reached the log before the failure (a
  // "failed" batch may be partly on disk): its outcome is unknown. Only
  // "starting" (the journal was not open yet) proves nothing was written.
  const outcomeUnknown = write && status >= 500 && code !== 'starting';
  const opts = { code, status, body, outcomeUnknown, changes };
  let err;
  if (status === 401) err = new UnauthorizedError(message, opts);
  else if (status === 410 || code === 'compacted') err = new CompactedError(message, opts);
  else if (status === 429) err = new RateLimitedError(message, opts);
  else if (status === 409) err = new ConflictError(message, opts);
  else if (status === 400 || status === 422) err = new ValidationError(message, opts);
  else if (status >= 500) err = new UnavailableError(message, opts);
  else err = new JournalError(message, opts);
  const ra = headers?.['retry-after'];
  if (ra !== undefined) {
    const secs = Number(ra);
    if (Number.isFinite(secs) && secs >= 0) err.retryAfterMs = secs * 1000;
    else {
      const at = Date.parse(ra);
      if (Number.isFinite(at)) err.retryAfterMs = Math.max(0, at - Date.now());
    }
  }
  return err;
}

/** isRefusal reports whether a 5xx code says the journal refuses writes until an operator acts. */
export function isRefusal(code) {
  return REFUSALS.has(code);
}
