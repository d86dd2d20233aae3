// Package record is the contract runtime-state-change-v1: the record a
// writer sends to say that a surface of the agent runtime changed, and
// the form the journal stores and returns. docs/record.md is its
// specification for users (every field, its default and its rules); this
// package is that specification in code, in one place, as Prometheus
// keeps tsdb/record apart from the log that carries it.
//
// It holds:
//
//   - the types: Change (one record), LostRecord (a tombstone's mark on a
//     Change) and Receipt (the journal's answer to a recorded change);
//   - the one JSON codec. Change.Append writes each of the record's three
//     forms with the same field order and escaping: FormStored, the
//     payload the hot log and the archives keep (an on-disk format: no
//     sequence, no committed_at, and schema_version then event_id first,
//     which the journal's dedupe reads in place); FormOutput, what readers
//     get; FormInput, what a writer sends (empty fields left out). Parse
//     reads a writer's JSON, refusing unknown fields, a supplied sequence
//     or committed_at and invalid UTF-8 by name; Decode reads the stored
//     and output forms. The encoder does not allocate beyond its buffer;
//   - the enums with their fixed numeric codes (enums.go): the index and
//     its checkpoint store a record's change type and severity as one
//     byte each, so a code is part of a file format and never moves;
//   - the one Validate of the contract: schema_version, required fields,
//     identifier and text rules, bounds, the enums, the shape of
//     changed_surfaces and the occurred_at range. CheckUTF8 is its UTF-8
//     rule (every string valid, refused by name, never rewritten).
//
// What the surface registry decides — a surface is declared, a snapshot
// id exists, the migration policy admits a source on a surface — is not
// the contract: engine/registry checks it (Surface.Admit) after Validate.
//
// The package is a leaf: engine, server, cmd and the clients' Go code
// import it; it imports only types and internal packages.
package record
