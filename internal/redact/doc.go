// Package redact keeps secrets out of the journal and keeps record metadata
// bounded (SPEC section 2, "Metadata is bounded and redacted"). Every record
// passes through it before anything touches disk, so the common case — no
// secret, within bounds — is allocation-free.
//
// # What is redacted
//
// String checks one free-text value (artifact_ref, correlation_id,
// causation_id, aggregate_id, and every metadata string value and key).
// When the value is a secret or contains one anywhere, the WHOLE value is
// replaced by the marker "[REDACTED:<kind>]" of the first secret found: the
// surrounding text goes too, so a secret whose end is ambiguous can never
// leak partly, and the surrounding text (a user name next to a password, a
// host next to a token) is not kept either. The kinds form a small fixed set
// (Kinds) fit for a Prometheus label; Rules lists every rule with its kind
// and what it matches:
//
//   - credentials in context: Bearer and Basic authorization, "key=value",
//     "key: value" and "\"key\":\"value\"" where the key names a secret
//     (IsSecretKey), URLs with a password (scheme://user:pass@host);
//   - token shapes: JWTs, PEM private keys, AWS access key ids (and AWS
//     secret keys next to an aws key), GCP API keys, Google OAuth tokens,
//     GitHub, GitLab, Slack (tokens and webhooks), Stripe, OpenAI,
//     Anthropic, npm and SendGrid tokens;
//   - anything else that looks random: a run of 32+ [A-Za-z0-9+/=_-] with
//     high Shannon entropy, mixed classes and no word structure.
//
// Identifiers stay readable: UUIDs of any version, ULIDs, hex digests and
// 40-character git commit SHAs (hex is always treated as an identifier or a
// digest, never as a secret), trace ids, short ids such as "ws-42", storage
// paths, RFC 3339 times, numbers, e-mail addresses and prose. The price of
// that choice: a secret that is pure hex (some vendors' 32-hex API keys) is
// only caught in context ("api_key=…") or under a secret key.
//
// IsSecretKey decides whether a metadata key names a secret. It splits the
// key into word parts (on "_", "-", ".", spaces, camelCase and digit
// boundaries) and matches a fixed vocabulary (KeyWords) case-insensitively:
// "apiKey", "X-Api-Key", "db.password" and "GITHUB_TOKEN" are secret keys;
// "tokenizer", "passage", "secretary" and "monkey" are not. A match followed
// by a describing word ("token_count", "secret_name", "api_key_id") or
// preceded by a qualifier ("has_password", "max_token", "prompt_token") is
// not a secret key, so LLM usage fields stay readable.
//
// # Marking
//
//   - "[REDACTED:<kind>]" (Marker) replaces a secret value or key. A marker
//     is never redacted again: String and Metadata are idempotent.
//   - TruncatedSuffix ("…[TRUNCATED]") ends a string cut to MaxStringBytes;
//     the suffix counts within the bound.
//   - DepthMarker ("[TRUNCATED:depth]") replaces an object or array nested
//     deeper than MaxDepth.
//   - TrimmedKey ("_trimmed": true) at the top level says some bound was
//     hit (keys cut or dropped, strings cut, depth cut, values dropped). It
//     counts against MaxKeys and MaxEncodedBytes like any other key.
//
// Report tells the caller what happened (for the receipt and the redaction
// metrics): redactions by kind and the detail of every cut.
//
// # Order and determinism
//
// Metadata redacts first and bounds second, so a secret can never survive by
// being cut in half: secret keys get the marker whatever their value, string
// values go through String on their full length, and a cut string is checked
// again. Keys are visited in sorted order, depth first, and the key and size
// budgets keep the longest prefix of that order that fits, so the same
// input and limits always give the same output (byte-identical JSON). The
// input is never modified.
//
// # Hot path
//
// String makes one pass over its input. Only a few bytes trigger a precise,
// hand-written matcher (no regular expressions): a letter starting a word
// (provider prefixes, Bearer/Basic, JWT), ':' and '=' (assignments, URL
// userinfo), "-----BEGIN " (PEM), and the end of a token run of 32+ bytes
// (entropy). Nothing allocates unless a value is redacted, and the markers
// of known kinds are preallocated.
//
// Metadata first walks the map without allocating, computing the exact size
// encoding/json.Marshal would write; when nothing needs redacting or
// trimming it returns the input map itself and a zero Report. Only then does
// it build a copy.
package redact
