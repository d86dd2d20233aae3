// Package relay ships a journal's records to NATS JetStream, one stream
// for every host's journal (SPEC section 11), in the transactional-outbox
// style: the journal is the outbox, the relay its only reader that
// publishes.
//
// Each record becomes one message on subject
// state.<host>.<surface>.<change_type> (a tombstone: state.<host>._lost.lost)
// with headers Nats-Msg-Id = event_id, State-Journal-Sequence,
// State-Journal-Host and State-Journal-Id, and the record's JSON as body.
// The relay reads the journal through the engine's one Follow, from a
// durable cursor in state/relay.json.
//
// Invariants:
//
//   - Exactly-once in the stream, per host, also beyond the stream's
//     dedupe window: the cursor names the last record of a contiguous run
//     JetStream acknowledged, and the stream sequence of its message; at
//     every start, and after every failed publish, the relay reads this
//     host's messages after that stream sequence and counts the ones
//     stored before it publishes anything, so a record acknowledged but
//     not yet in the cursor (a crash between the two) is never sent again.
//     A publish made while nothing of this host is in flight carries the
//     expected last stream sequence of the subjects state.<host>.>, so a
//     copy racing another fails with "wrong last sequence" (10071, or
//     10164 on a replicated stream) instead of storing twice; such a copy
//     is believed stored only when the host's last message carries its
//     Nats-Msg-Id. Inside the dedupe window JetStream also drops copies by
//     Nats-Msg-Id.
//   - Order: one connection publishes a host's records in sequence order.
//     Should a publish fail while later ones in flight succeed (a leader
//     change of a replicated stream), the missing record is published
//     after them: every record is still in the stream once, and the
//     State-Journal-Sequence header gives the journal's order.
//   - At most MaxInFlight publishes await acknowledgement; while NATS or
//     JetStream is slow or down the relay retries with exponential backoff
//     and full jitter, and the lag (records, seconds) grows in metrics and
//     Status.
//   - The cursor file is checksummed and names its journal, host and
//     stream: a damaged or foreign file stops the relay with an error
//     naming it, it is never believed. It is written atomically
//     (internal/fsx) and only forward. state/relay.lock keeps a second
//     relay off the same journal.
//   - Retention keeps what is not shipped: a Guard (installed by the
//     process that compacts) reads the cursor file as the engine's
//     RetentionFloor; only the byte budget passes it, and that is counted
//     (state_journal_relay_dropped_unshipped_total, state/relay-dropped.json)
//     and logged.
//
// Imports point down: relay imports engine; engine never imports relay.
package relay
